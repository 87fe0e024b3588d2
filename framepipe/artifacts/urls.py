"""URLs as framepipe shows and stores them: never with ``user:password@`` credentials, never with
secret query parameters (``api_key``, signatures).

``API_BASE_URL=http://user:pass@models.lan:9001`` is allowed (``requests`` sends the pair as
HTTP basic auth), but the pair is a secret like the API key: messages, logs and the cache
manifest get the URL without it.

Example:
    >>> from framepipe.artifacts.urls import public_url, stored_url, url_secrets
    >>> public_url("http://admin:pw@models.lan:9001/ort/a/1?api_key=K")
    'http://models.lan:9001/ort/a/1?api_key=***'
    >>> stored_url("http://admin:pw@models.lan:9001/ort/a/1?api_key=K&v=2")
    'http://models.lan:9001/ort/a/1?v=2'
    >>> url_secrets("http://admin:pw@models.lan:9001")
    ('admin:pw', 'pw')
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

from framepipe.artifacts.redact import redact_url, strip_secrets


def without_userinfo(url: str) -> str:
    """``url`` without the ``user:password@`` part of its host (unchanged when there is none)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=host))


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials in ``url``'s host part (raw and decoded), to be redacted from any text."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return ()
    if "@" not in netloc:
        return ()
    userinfo = netloc.rsplit("@", 1)[0]
    found = [userinfo]
    if ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    found += [unquote(s) for s in found if unquote(s) != s]
    return tuple(s for s in found if s)


def public_url(url: str) -> str:
    """What messages and logs show: no credentials, secret parameters as ``***``."""
    return redact_url(without_userinfo(url))


def stored_url(url: str) -> str:
    """What the cache manifest keeps: no credentials, no secret parameters."""
    return strip_secrets(without_userinfo(url))
