"""For demos and tests only: ``gatekeeper demo`` and a development OpenID issuer with a login side."""
