"""What the inference routers share: reading a body under the size cap, and answering every request
through one place that maps errors to Roboflow's shape and counts the request in the metrics.

Example:
    >>> from framepipe.server.routes.common import Answered
    >>> Answered(200, {"status": "ready"}).status
    200
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from framepipe.errors import RequestTooLargeError
from framepipe.server.errors import error_json
from framepipe.server.service import InferenceService

logger = logging.getLogger("framepipe.server")


@dataclass
class Answered:
    """A route's answer before it becomes a response: JSON ``body`` or a ready ``response``."""

    status: int = 200
    body: Any = None
    model: str = ""
    response: Response | None = None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, ``RequestTooLargeError`` as soon as it passes ``limit`` bytes (announced or sent)."""
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise RequestTooLargeError(f"the request body is {announced} bytes; this server takes at most {limit}")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestTooLargeError(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def answer(
    service: InferenceService, request: Request, route: str, handler: Callable[[], Awaitable[Answered]]
) -> Response:
    """Run ``handler``; errors become Roboflow-shaped answers (never a traceback); count it."""
    started = time.perf_counter()
    service.metrics.in_flight += 1
    model = ""
    try:
        result = await handler()
        model = result.model
        response = result.response or JSONResponse(result.body, status_code=result.status)
    except Exception as error:  # every error is answered; the unexpected ones are logged
        response = error_json(error, service.secrets)
    finally:
        service.metrics.in_flight -= 1
    elapsed = time.perf_counter() - started
    service.metrics.observe(route, model, response.status_code, elapsed)
    logger.debug("%s %s %d %.1f ms", request.method, request.url.path[:300], response.status_code, elapsed * 1000)
    return response
