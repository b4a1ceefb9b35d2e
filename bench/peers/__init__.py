"""Peers gatekeeper is measured against in the same run (see bench/README.md, "Peers")."""
