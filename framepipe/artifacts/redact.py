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

# One redactor for the whole of framepipe: these names are kept here for the artifacts' callers.
from framepipe._internal.redact import is_secret_param, redact_text, redact_url, strip_secrets

__all__ = [
    "SecretRedactingFilter",
    "install_log_redaction",
    "is_secret_param",
    "redact_text",
    "redact_url",
    "strip_secrets",
]


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
