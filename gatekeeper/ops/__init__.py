"""What operators talk to: the admin listener (/healthz, /readyz, /metrics, POST /revoke)."""
