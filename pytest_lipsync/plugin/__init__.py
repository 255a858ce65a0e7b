"""The pytest plugin: hooks, test items, fixtures and assertions. The only package that imports pytest.

pytest imports ``hooks`` for every run of every project that has the package installed: it stays inert,
and imports no torch, OpenCV or PyAV, until a lipsync flag, setting or fixture is used.
"""
