"""MJCF models, one folder per model; loaded with :mod:`importlib.resources`."""
