"""`python -S -I helper_start.py ARGS`: the executor's entry point (see helper.py).

The interpreter compiles a script at every start, but loads an imported module from its cached
bytecode: this file stays a few lines, and the helper proper is imported. The two packages are
entered as bare modules rather than by running their __init__ files, which import typing (and
with it re, collections, functools).
"""

import os
import sys

_runtime_dir = os.path.dirname(os.path.abspath(__file__))
for _name, _path in (("imagetool", os.path.dirname(_runtime_dir)), ("imagetool.runtime", _runtime_dir)):
    _package = type(sys)(_name)
    _package.__path__ = [_path]
    sys.modules.setdefault(_name, _package)

from imagetool.runtime.helper import main  # noqa: E402

_code = main(sys.argv[1:])
# the container has ended: its status goes back at once, without the interpreter's teardown (milliseconds
# that whoever waits for us would wait too); the helper writes nothing through sys.stdout or sys.stderr
os._exit(_code)
