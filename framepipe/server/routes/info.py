"""``GET /info``, ``/healthz``, ``/readiness`` and ``/metrics`` of the inference server.

``/healthz`` needs no key; the others need one when the server has keys. ``/readiness`` is 503 until
the pinned and preloaded models are loaded.

Example:
    >>> from framepipe.server.routes.info import info_router
    >>> from framepipe.server.service import InferenceService
    >>> sorted(route.path for route in info_router(InferenceService()).routes)  # doctest: +SKIP
    ['/healthz', '/info', '/metrics', '/readiness']
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from framepipe import __version__
from framepipe.server.routes.common import Answered, answer
from framepipe.server.service import InferenceService


def info_router(service: InferenceService) -> APIRouter:
    router = APIRouter()

    def authorize(request: Request) -> None:
        service.authorize(request.query_params.get("api_key"), request.headers.get("authorization"))

    @router.get("/info")
    async def info(request: Request) -> Response:
        async def handle() -> Answered:
            authorize(request)
            body = {"name": "framepipe Inference Server", "version": __version__, "uuid": service.server_id}
            return Answered(body=body)

        return await answer(service, request, "/info", handle)

    @router.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "healthy"})

    @router.get("/readiness")
    async def readiness(request: Request) -> Response:
        async def handle() -> Answered:
            authorize(request)
            if service.models.ready:
                return Answered(body={"status": "ready"})
            return Answered(503, {"status": "not ready"})

        return await answer(service, request, "/readiness", handle)

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        async def handle() -> Answered:
            authorize(request)
            text = service.metrics.render(service.models.loaded())
            return Answered(response=PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8"))

        return await answer(service, request, "/metrics", handle)

    return router
