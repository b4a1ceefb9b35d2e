"""Session errors; they belong in the tree of ``gatekeeper/errors.py``::

    Unauthenticated        401
    └── SessionInvalid     401   a session cookie was sent and cannot be used: tampered, sealed
                                 with an unknown key, too many or missing chunks, expired
                                 (code ``session_expired``) or idle (code ``session_idle``)
    SessionTooLarge        500   a new session does not fit in ``session.max_chunks`` cookies

``description`` names the check that failed and never holds cookie bytes, keys or tokens.
"""

from __future__ import annotations

from gatekeeper.errors import GatekeeperError, Unauthenticated


class SessionInvalid(Unauthenticated):
    code = "session_invalid"


class SessionTooLarge(GatekeeperError):
    code = "session_too_large"
    status = 500
