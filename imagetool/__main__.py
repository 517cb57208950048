from imagetool.cli import main

main()
