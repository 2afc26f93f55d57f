"""The Python calculator API under its former name: see `ovms_notebook.engine.python.api`."""

from ovms_notebook.engine.python.api import *  # noqa: F403
from ovms_notebook.engine.python.api import __all__  # noqa: F401
