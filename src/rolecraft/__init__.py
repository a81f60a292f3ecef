"""RoleCraft: build, train and evaluate role-playing LLMs."""

import time as _time

__version__ = "0.1.0"
# when the package was first imported: the reference for "launch to first training step"
STARTED = _time.perf_counter()
