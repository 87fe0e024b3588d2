"""Sending the client's requests: at most ``max_concurrent_requests`` in flight in a sliding pool
(the next request starts as soon as any one ends, unlike ``inference_sdk``'s waves, which wait
for a whole package), results in input order, retries on 429/503/504 and on connection errors
with doubling backoff, and errors that name the route and the server's message but never the key.

Example:
    >>> from framepipe.client.executor import RequestData, backoff_delays
    >>> backoff_delays(attempts=4, base_s=0.5, cap_s=1.5)
    [0.5, 1.0, 1.5]
    >>> RequestData("POST", "http://127.0.0.1:9001/infer/object_detection").route
    'POST /infer/object_detection'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from framepipe.client.entities import RETRYABLE_STATUS_CODES
from framepipe.client.errors import HTTPCallErrorError, HTTPClientError, HTTPServerConnectionError
from framepipe.client.images import PreparedImage

logger = logging.getLogger("framepipe.client")
_LOCAL = threading.local()


@dataclass(frozen=True)
class RequestData:
    """One HTTP request, and the images it carries (to scale their predictions back)."""

    method: str
    url: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: str | bytes | None = None
    headers: dict[str, str] | None = None
    images: Sequence[PreparedImage] = field(default_factory=tuple)

    @property
    def route(self) -> str:
        """``METHOD /path``, without the host or the query (where an API key may be)."""
        return f"{self.method} {urlsplit(self.url).path}"


def backoff_delays(attempts: int, base_s: float, cap_s: float) -> list[float]:
    """The waits between ``attempts`` tries: ``base_s``, doubled each time, at most ``cap_s``."""
    return [min(cap_s, base_s * 2**n) for n in range(max(0, attempts - 1))]


def _session() -> requests.Session:
    session = getattr(_LOCAL, "session", None)
    if session is None:
        session = _LOCAL.session = requests.Session()
        session.trust_env = True
    return session


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def api_message(response: requests.Response) -> str:
    """The server's error message: Roboflow's ``message`` / ``detail``, framepipe's
    ``error.message``, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        error = body.get("error")
        nested = error.get("message") if isinstance(error, dict) else error
        message = body.get("message") or body.get("detail") or nested
        if message is not None:
            text = str(message)
            if body.get("inner_error_message"):
                text = f"{text}. More details: {body['inner_error_message']}"
            return text
    return str(body)[:500]


def raise_for_status(response: requests.Response, request: RequestData, secret: str | None = None) -> None:
    """``HTTPCallErrorError`` for an error status (the key, if it shows up anywhere, redacted)."""
    if response.status_code < 400:
        return
    raise HTTPCallErrorError(
        description=f"{request.route} answered HTTP {response.status_code}",
        status_code=response.status_code,
        api_message=_redact(api_message(response), secret),
    )


def send(
    request: RequestData,
    *,
    attempts: int = 3,
    backoff_s: float = 1.0,
    backoff_max_s: float = 30.0,
    timeout_s: float | None = 60.0,
    secret: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> requests.Response:
    """Send ``request``, retrying on 429/503/504 and connection errors; the last answer comes
    back whatever its status. A connection error on the last try raises ``HTTPServerConnectionError``."""
    delays = backoff_delays(attempts, backoff_s, backoff_max_s)
    for attempt in range(attempts):
        try:
            response = _session().request(
                request.method,
                request.url,
                params=request.params,
                json=request.json,
                data=request.data,
                headers=request.headers,
                timeout=timeout_s,
                allow_redirects=False,
            )
        except requests.ConnectionError as error:
            if attempt + 1 >= attempts:
                reason = _redact(type(error).__name__, secret)
                raise HTTPServerConnectionError(
                    f"Error with server connection: {request.route} failed after {attempts} tries ({reason})"
                ) from None
            logger.debug("%s: connection error, try %d of %d", request.route, attempt + 1, attempts)
            sleep(delays[attempt])
            continue
        except requests.Timeout:
            raise HTTPClientError(f"{request.route} got no answer within {timeout_s:g} s") from None
        except requests.RequestException as error:
            raise HTTPClientError(f"{request.route} failed: {type(error).__name__}") from None
        if response.status_code not in RETRYABLE_STATUS_CODES or attempt + 1 >= attempts:
            return response
        wait_s = delays[attempt]
        hinted = _retry_after(response)
        if hinted is not None:
            wait_s = min(backoff_max_s, max(wait_s, hinted))
        logger.debug(
            "%s: HTTP %d, try %d of %d, retrying in %.2f s",
            request.route,
            response.status_code,
            attempt + 1,
            attempts,
            wait_s,
        )
        response.close()
        sleep(wait_s)
    raise AssertionError("unreachable")  # pragma: no cover


def run_all(
    requests_data: Sequence[RequestData], max_concurrent_requests: int, call: Callable[[RequestData], Any]
) -> list[Any]:
    """``call`` on every request, at most ``max_concurrent_requests`` at once in a sliding pool;
    the results in the order of ``requests_data``. The first error cancels the requests that have
    not started and is raised once those under way have ended."""
    if len(requests_data) <= 1 or max_concurrent_requests <= 1:
        return [call(request) for request in requests_data]
    sessions: list[requests.Session] = []
    lock = threading.Lock()

    def in_worker(request: RequestData) -> Any:
        if getattr(_LOCAL, "session", None) is None:
            with lock:
                sessions.append(_session())
        return call(request)

    workers = min(max_concurrent_requests, len(requests_data))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="framepipe-client")
    try:
        futures: list[Future[Any]] = [pool.submit(in_worker, request) for request in requests_data]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            wait(futures)
            raise failed.exception()  # type: ignore[misc]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True)
        for session in sessions:
            session.close()
