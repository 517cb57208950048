from imagetool.cli.entry import run

run()
