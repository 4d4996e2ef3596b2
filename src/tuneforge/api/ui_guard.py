"""The dashboard's defences against other sites: CSRF tokens, the Origin check, and the
security headers every dashboard response carries.

A signed-in form carries a token derived from the session: an HMAC keyed by the session
cookie's secret (the API key, which only the server and the browser's HttpOnly cookie hold),
so no other site can compute it and it is worthless with another session. The sign-in form,
before any session exists, carries a random token that must equal the one in a short-lived
cookie set with the form (double submit). Either way the ``Origin`` header (or, without one,
``Referer``) must name this server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

FIELD = "csrf_token"
LOGIN_COOKIE = "tuneforge_login_csrf"
LOGIN_COOKIE_MAX_AGE = 3600
_SESSION_PURPOSE = b"tuneforge dashboard form"
_DEFAULT_PORTS = {"http": 80, "https": 443}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class FormRefused(Exception):
    """A POST that may come from another site: answered 403 with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def session_token(session_secret: str) -> str:
    return hmac.new(session_secret.encode(), _SESSION_PURPOSE, hashlib.sha256).hexdigest()


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def check_token(sent: str | None, expected: str | None) -> None:
    if not sent:
        raise FormRefused("the form has no CSRF token; reload the page and submit it again")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise FormRefused(
            "the form's CSRF token is not valid for this session; reload the page and "
            "submit it again"
        )


def check_same_origin(request: Request) -> None:
    """Refuse a request whose ``Origin`` (else ``Referer``) is not this server's own."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed is None:
        return  # neither header: the token alone decides
    own = _origin(f"{request.url.scheme}://{request.url.netloc}")
    if own is None or _origin(claimed) != own:
        raise FormRefused(f"the form was sent from another site ({claimed[:200]})")


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None  # "null", a bare word, an unknown scheme: never our own
    return scheme, parts.hostname.lower(), port
