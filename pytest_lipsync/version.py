"""The package's version, in a module of its own so that any layer can name it without importing the
public API (which loads the plugin's assertions on demand)."""

__version__ = "0.1.0"
