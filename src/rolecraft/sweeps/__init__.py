"""The paper's tables as grids: experiment definitions, W&B sweep files, and a local grid runner.

``experiments/*.yaml`` (one per paper artefact) is the source; ``sweeps/*.yaml`` are generated
from it (``rolecraft sweep generate``; a test keeps them in sync); ``rolecraft sweep expand``
lists a sweep's runs in W&B's grid order and ``rolecraft sweep run-local`` runs them here.
Only PyYAML and the standard library are imported, so these commands start fast.
"""
