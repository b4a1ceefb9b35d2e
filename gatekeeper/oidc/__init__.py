"""OpenID Connect relying-party client: discovery, ID tokens, refresh, back-channel logout tokens."""
