"""Keeping API keys and signed-URL secrets out of logs, messages and the cache.

Example:
    >>> from framepipe.artifacts.redact import redact_url, strip_secrets
    >>> redact_url("https://api.roboflow.com/ort/ds/3?nocache=true&api_key=abc123")
    'https://api.roboflow.com/ort/ds/3?nocache=true&api_key=***'
    >>> strip_secrets("https://api.roboflow.com/ort/ds/3?nocache=true&api_key=abc123")
    'https://api.roboflow.com/ort/ds/3?nocache=true'
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_NAME = re.compile(
    r"^(api_?key|key|token|access_token|auth|password|secret|signature|sig|x-amz-.*|x-goog-.*)$",
    re.IGNORECASE,
)
_SECRET_IN_TEXT = re.compile(
    r"((?:api_?key|access_token|token|signature|sig|x-amz-[a-z-]+|x-goog-[a-z-]+)=)[^&\s'\"<>]+", re.IGNORECASE
)


def is_secret_param(name: str) -> bool:
    """Whether a query parameter name carries a secret (API key, token, URL signature)."""
    return bool(_SECRET_NAME.match(name))


def redact_url(url: str) -> str:
    """``url`` with the value of every secret query parameter replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, "***" if is_secret_param(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def strip_secrets(url: str) -> str:
    """``url`` without its secret query parameters (what the cache manifest keeps as a source)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_secret_param(k)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with ``api_key=...``-style values and each of ``secrets`` replaced by ``***``."""
    text = _SECRET_IN_TEXT.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class SecretRedactingFilter(logging.Filter):
    """A logging filter that rewrites a record's message with secrets redacted.

    framepipe puts one on urllib3's connection-pool logger, which logs request URLs (with
    ``api_key=``) at DEBUG level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_INSTALLED = False


def install_log_redaction() -> None:
    """Redact secrets in the log records of the HTTP libraries framepipe uses (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
        logging.getLogger(name).addFilter(SecretRedactingFilter())
    _INSTALLED = True
