"""One exception family, so entry points can print one line instead of a traceback."""


class RolecraftError(Exception):
    """A user-facing error: the message says what, where (file:line or key) and how to fix it."""


class DataError(RolecraftError):
    """Bad input data (malformed file, missing field, unknown label ...)."""


class ConfigError(RolecraftError, ValueError):
    """A configuration value that composes but cannot work (missing path, bad combination)."""
