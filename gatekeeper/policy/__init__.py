"""Casbin policies: compiled (engine.py: rules.py the values, index.py which rules a request can
match, roles.py role resolution incl. domains and patterns, inputs.py what feeds the request
fields, expressions.py each rule's eval() condition, attributes.py and query.py the request's
r.obj.NAME), loaded and checked (loader.py, features.py, lint.py), hot-reloaded (reload.py).
"""
