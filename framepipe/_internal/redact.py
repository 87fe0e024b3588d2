"""The one redactor: credentials and secret parameters out of URLs and free text, for logs,
messages, status updates and the model cache.

A URL's user information (``user:password@``) becomes ``***@``, whatever the password holds
(``@``, ``/``, ``?``, ``#``); the value of every secret query parameter (``api_key``, ``token``,
``signature``, ...) becomes ``***``; in free text, every URL is redacted so, and so is each
``name=value`` pair whose name is a secret.

Example:
    >>> from framepipe._internal.redact import redact_text, redact_url
    >>> redact_url("rtsp://user:p@ss/w@cam:554/live?channel=1&token=SECRET")
    'rtsp://***@cam:554/live?channel=1&token=***'
    >>> redact_text("could not open rtsp://admin:x@10.0.0.2/live (api_key=K3Y)")
    'could not open rtsp://***@10.0.0.2/live (api_key=***)'
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["is_secret_param", "redact_reference", "redact_text", "redact_url", "strip_secrets"]

_SECRET_NAME = re.compile(
    r"^(api_?key|key|token|access_token|auth|password|passwd|secret|signature|sig|x-amz-.*|x-goog-.*)$",
    re.IGNORECASE,
)
_SECRET_IN_TEXT = re.compile(
    r"((?:api_?key|access_token|token|password|passwd|secret|signature|sig|x-amz-[a-z-]+|x-goog-[a-z-]+)=)"
    r"[^&\s'\"<>)]+",
    re.IGNORECASE,
)
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# what follows the user information: a host (name, IPv4 or [IPv6]) with an optional port
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(?::\d*)?(?=[/?#]|$)")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter name carries a secret (API key, token, URL signature).

    >>> is_secret_param("api_key"), is_secret_param("channel")
    (True, False)
    """
    return bool(_SECRET_NAME.match(name))


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, sep, _ = pair.partition("=")
        pairs.append(f"{name}=***" if sep and is_secret_param(name) else pair)
    return "&".join(pairs)


def redact_url(url: str) -> str:
    """``url`` with its user information replaced by ``***@`` and the value of every secret query
    parameter by ``***``; anything that is not a URL is returned as it is."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        return url
    at = rest.rfind("@")
    while at >= 0:  # the last '@' that a host follows ends the user information
        if _HOST.match(rest[at + 1 :]):
            rest = "***@" + rest[at + 1 :]
            break
        at = rest.rfind("@", 0, at)
    location, mark, query = rest.partition("?")
    if not mark:
        return f"{scheme}://{location}"
    query, hash_mark, fragment = query.partition("#")
    return f"{scheme}://{location}?{_redact_query(query)}{hash_mark}{fragment}"


def redact_reference(reference: object) -> str:
    """A video reference (path, URL or webcam index) fit for logs.

    >>> redact_reference("rtsp://user:pa/ss@cam/live"), redact_reference(0)
    ('rtsp://***@cam/live', '0')
    """
    return redact_url(str(reference))


def strip_secrets(url: str) -> str:
    """``url`` without its user information and its secret query parameters (what the model
    cache keeps as a source)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_secret_param(k)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


SHORT_SECRET = 8
"""Secrets shorter than this are replaced only where they stand alone (not inside other words)."""


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every URL in it redacted, ``api_key=...``-style values and each of
    ``secrets`` replaced by ``***``."""
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
    text = _SECRET_IN_TEXT.sub(r"\1***", text)
    for secret in secrets:
        if len(secret) >= SHORT_SECRET:
            text = text.replace(secret, "***")
        elif secret:  # a short key would also blank out its letters in every word: whole tokens only
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text
