"""The package version, in a module of its own (read by setuptools and persistence)."""

__version__ = "0.1.0.dev0"
