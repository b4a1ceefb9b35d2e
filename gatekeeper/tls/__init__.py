"""TLS on gatekeeper's listeners: the server context (context.py) and its certificate rotation
(rotation.py). The files' checks are in gatekeeper/tlsfiles.py, the peer certificate's claims in
gatekeeper/peercert.py."""
