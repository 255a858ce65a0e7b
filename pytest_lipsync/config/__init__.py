"""Configuration: the keys a user can set, and their resolution from every source into frozen objects.

``keys`` declares the keys and reads ``pyproject.toml`` (all an inert pytest run needs); ``resolve`` merges
defaults, pyproject, ``LIPSYNC_*`` variables, flags, options and markers, and validates them.
"""
