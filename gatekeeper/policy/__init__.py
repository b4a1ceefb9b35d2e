"""Casbin policies: compiled (engine.py), loaded and checked (loader.py, lint.py), hot-reloaded
(reload.py).
"""
