"""The ASGI edge of the public listener: dispatch (gate.py), proxying, WebSockets, forward-auth and
the answers gatekeeper writes itself.
"""
