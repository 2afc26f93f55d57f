"""Process settings that must be in place before grpc is first imported.

gRPC's C core prints INFO lines into a notebook's stderr and installs fork
handlers that hang `!cmd` in a kernel; both are switched off unless the user
chose otherwise. Imported first by the package.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GLOG_minloglevel", "2")
