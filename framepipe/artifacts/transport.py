"""HTTP plumbing shared by the registry client and the file downloader: sessions, status codes
mapped to errors as Roboflow maps them, and bounded retries with exponential backoff and jitter.

Roboflow Inference retries nothing by default; framepipe retries 5xx answers, timeouts and broken
connections ``settings.retries`` times (default 3), never a 4xx.

Example:
    >>> from framepipe.artifacts.transport import error_for_status
    >>> type(error_for_status(404, "model 'ds/3'", "https://api.roboflow.com")).__name__
    'RegistryModelNotFoundError'
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Callable
from typing import TypeVar

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from framepipe import __version__
from framepipe.artifacts.redact import install_log_redaction, redact_text
from framepipe.artifacts.settings import RegistrySettings
from framepipe.errors import (
    MalformedRegistryResponseError,
    ModelDownloadError,
    RegistryConnectionError,
    RegistryForbiddenError,
    RegistryModelNotFoundError,
    RegistryNotAuthorizedError,
    RegistryPaymentRequiredError,
    RegistryTimeoutError,
    RegistryUnsuccessfulRequestError,
    RegistryUsagePausedError,
)

logger = logging.getLogger("framepipe.artifacts")
T = TypeVar("T")


class RetryableError(Exception):
    """An attempt failed in a way that another attempt may fix; ``final`` is what to raise when
    no attempt is left."""

    def __init__(self, final: ModelDownloadError) -> None:
        super().__init__(str(final))
        self.final = final


def new_session() -> requests.Session:
    """A ``requests`` session with framepipe's User-Agent and secret-redacting HTTP logs."""
    install_log_redaction()
    session = requests.Session()
    session.headers["User-Agent"] = f"framepipe/{__version__}"
    return session


def read_bounded(response: requests.Response, limit: int, subject: str, where: str) -> bytes:
    """The body of a streamed ``response``, decoded (``gzip`` / ``deflate``) by framepipe itself so
    that no answer can take more than ``limit`` bytes of memory, however well it compresses.

    Raises ``MalformedRegistryResponseError`` for a larger body or an unknown encoding, and
    ``requests.ConnectionError`` when the connection breaks (the callers retry those).
    """
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    decoder = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(wbits=47 if encoding != "deflate" else 15)
    elif encoding not in ("", "identity"):
        raise MalformedRegistryResponseError(f"{where} answered {subject} with Content-Encoding {encoding!r}")
    body = bytearray()
    too_large = MalformedRegistryResponseError(
        f"{where} answered {subject} with a body larger than {limit} bytes; no registry answer is that large"
    )
    try:
        for chunk in response.raw.stream(64 * 1024, decode_content=False):
            if decoder is None:
                body += chunk
            else:
                piece = chunk
                while piece and len(body) <= limit:
                    body += decoder.decompress(piece, limit + 1 - len(body))
                    piece = decoder.unconsumed_tail
            if len(body) > limit:
                raise too_large
    except zlib.error as error:
        raise MalformedRegistryResponseError(
            f"{where} answered {subject} with a broken {encoding} body: {error}"
        ) from None
    except Urllib3Error as error:
        raise requests.ConnectionError(error) from None
    return bytes(body)


def error_for_status(status: int, subject: str, where: str) -> RegistryUnsuccessfulRequestError:
    """The error for an HTTP error ``status`` about ``subject`` (e.g. ``"model 'ds/3'"``) at ``where``."""
    if status == 401:
        return RegistryNotAuthorizedError(
            f"{where} refused the request for {subject} (401 not authorised): check the API key "
            "(api_key=, ROBOFLOW_API_KEY or API_KEY); the key itself is never shown",
            status,
        )
    if status == 402:
        return RegistryPaymentRequiredError(
            f"{where} refused {subject} (402 payment required): check the plan and billing of the workspace", status
        )
    if status == 403:
        return RegistryForbiddenError(
            f"{where} refused {subject} (403 forbidden): the API key has no access to it; check that the key "
            "belongs to the workspace that owns the model",
            status,
        )
    if status == 404:
        return RegistryModelNotFoundError(
            f"{where} has no {subject} (404 not found): check the dataset id and version number", status
        )
    if status == 423:
        return RegistryUsagePausedError(
            f"{where} refused {subject} (423 locked): usage of the workspace is paused; check its usage limits",
            status,
        )
    return RegistryUnsuccessfulRequestError(f"{where} answered HTTP {status} for {subject}", status)


def is_retryable_status(status: int) -> bool:
    """5xx answers (and 429, too many requests) are worth another attempt; other errors are not."""
    return status >= 500 or status == 429


def translate_request_error(
    error: requests.RequestException, subject: str, url: str, secrets: tuple[str, ...] = ()
) -> RetryableError:
    """A ``requests`` exception as a retryable framepipe error. The message holds the redacted URL and
    never the exception's own text raw (``requests`` puts full URLs, keys included, in it)."""
    from framepipe.artifacts.urls import public_url, url_secrets

    secrets = (*secrets, *url_secrets(url))
    detail = redact_text(f"{type(error).__name__}: {error}", secrets)
    safe_url = redact_text(public_url(url), secrets)
    if isinstance(error, requests.Timeout) or any(isinstance(arg, ReadTimeoutError) for arg in error.args):
        return RetryableError(RegistryTimeoutError(f"timed out waiting for {safe_url} ({subject}): {detail}"))
    return RetryableError(RegistryConnectionError(f"connection to {safe_url} ({subject}) failed or broke: {detail}"))


def _with_note(error: ModelDownloadError, note: str) -> ModelDownloadError:
    message = f"{error} ({note})"
    if isinstance(error, RegistryUnsuccessfulRequestError):
        return type(error)(message, error.status)
    return type(error)(message)


def with_retries(attempt: Callable[[int], T], settings: RegistrySettings, subject: str) -> T:
    """Run ``attempt(n)`` until it returns, retrying on ``RetryableError`` at most ``settings.retries``
    times with exponential backoff and full jitter; the last failure is raised as its ``final``."""
    attempts = max(0, settings.retries) + 1
    for number in range(1, attempts + 1):
        try:
            return attempt(number)
        except RetryableError as failure:
            if number == attempts:
                raise _with_note(
                    failure.final, f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}"
                ) from None
            delay = random.uniform(0, min(8.0, settings.backoff_s * 2 ** (number - 1)))
            logger.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.2f s", subject, number, attempts, failure, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
