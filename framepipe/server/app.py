"""The FastAPI application of framepipe's servers, built from routers over injected services: the
inference server (``InferenceService``: ``/info``, ``/healthz``, ``/readiness``, ``/metrics``,
``/model/*``, ``/infer/*`` and the legacy ``/{dataset_id}/{version_id}``) and the model registry
(``RegistryService``: ``/ort``, ``/files``), alone or together in one process. The lifespan starts the
inference service (worker threads, pinned and preloaded models) and stops it.

Example:
    >>> from framepipe.server.app import create_app
    >>> from framepipe.server.routes.registry import RegistryService
    >>> app = create_app(registry=RegistryService("registry"))  # doctest: +SKIP
    >>> sorted(route.path for route in app.routes)  # doctest: +SKIP
    ['/files/{dataset}/{version}/{name}', '/ort/{dataset}/{version}']
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from framepipe import __version__

if TYPE_CHECKING:
    from fastapi import APIRouter

    from framepipe.server.routes.registry import RegistryService
    from framepipe.server.service import InferenceService

logger = logging.getLogger("framepipe.server")


def error_response(status: int, message: str) -> JSONResponse:
    """framepipe's error body, ``{"error": {"message", "status"}}``; messages never hold server paths."""
    return JSONResponse({"error": {"message": message, "status": status}}, status_code=status)


def create_app(
    *,
    registry: RegistryService | None = None,
    inference: InferenceService | None = None,
    routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """A FastAPI app serving ``inference`` (Roboflow's inference server routes), ``registry``
    (Roboflow's ``/ort`` API and its files) and any other ``routers``. No docs or OpenAPI pages are
    served: the apps are APIs for machines."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if inference is not None:
            inference.start()
        try:
            yield
        finally:
            if inference is not None:
                inference.stop()

    app = FastAPI(
        title="framepipe", version=__version__, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.inference = inference
    app.state.registry = registry

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else "request refused"
        return error_response(error.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, "malformed request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.error("unexpected %s on %s", type(error).__name__, request.url.path[:300])
        return JSONResponse({"message": "Internal error.", "error_type": "InternalError"}, status_code=500)

    if inference is not None:
        from framepipe.server.routes.infer import infer_router
        from framepipe.server.routes.info import info_router
        from framepipe.server.routes.models import models_router

        app.include_router(info_router(inference))
        app.include_router(models_router(inference))
        app.include_router(infer_router(inference))
    if registry is not None:
        from framepipe.server.routes.registry import registry_router

        app.include_router(registry_router(registry))
    for router in routers:
        app.include_router(router)
    if inference is not None and inference.settings.legacy_route_enabled:
        from framepipe.server.routes.legacy import legacy_router

        app.include_router(legacy_router(inference))  # last: it matches any /a/b path
    return app
