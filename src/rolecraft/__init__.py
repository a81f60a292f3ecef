"""RoleCraft: build, train and evaluate role-playing LLMs."""

__version__ = "0.1.0"
