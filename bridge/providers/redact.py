"""Keeping credentials out of what leaves a provider: error messages and log lines.

Providers already mask the secrets they hold (`_common.redact`); this module adds what they
cannot see: a password inside a `base_url` (`http://user:password@host/`), which httpx
prints in its request log line and which may show up in a transport error. Messages are cut
to a length only *after* every mask is applied: cutting first could leave half a key on one
side of the cut, which no mask then recognises.
"""

from __future__ import annotations

import logging
import re

#: How much of an error message reaches a client or a log line.
MESSAGE_CHARS = 500

# scheme://user:password@  or  scheme://token@  (any URL-ish scheme, up to the first @ of the authority)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^\s/@?#]+)@")


def strip_userinfo(text: str) -> str:
    """Every `scheme://user:password@` in `text` becomes `scheme://***@`."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Credentials masked first, then cut to `limit` characters (with an ellipsis)."""
    text = strip_userinfo(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CredentialFilter(logging.Filter):
    """Masks URL credentials in a logger's records (httpx logs every request's full URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is not ours to fix here
            return True
        clean = strip_userinfo(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_filters() -> None:
    """Mask credentials in the HTTP libraries' own log lines (idempotent)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, CredentialFilter) for f in logger.filters):
            logger.addFilter(CredentialFilter())
