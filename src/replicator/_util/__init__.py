"""Foundations shared by every layer: atomic file I/O, formatting, progress, warnings, optional
dependencies, hashing, rebuildable SQLite caches and mapping helpers. Nothing here knows about
runs or stores."""
