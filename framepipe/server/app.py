"""The FastAPI application of framepipe's servers, built from routers so that more services (the
inference server) can join the registry in one process.

Example:
    >>> from framepipe.server.app import create_app
    >>> from framepipe.server.routes.registry import RegistryService
    >>> app = create_app(registry=RegistryService("registry"))  # doctest: +SKIP
    >>> sorted(route.path for route in app.routes)  # doctest: +SKIP
    ['/files/{dataset}/{version}/{name}', '/ort/{dataset}/{version}']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from framepipe import __version__

if TYPE_CHECKING:
    from fastapi import APIRouter

    from framepipe.server.routes.registry import RegistryService


def error_response(status: int, message: str) -> JSONResponse:
    """framepipe's error body, ``{"error": {"message", "status"}}``; messages never hold server paths."""
    return JSONResponse({"error": {"message": message, "status": status}}, status_code=status)


def create_app(*, registry: RegistryService | None = None, routers: Iterable[APIRouter] = ()) -> FastAPI:
    """A FastAPI app serving ``registry`` (Roboflow's ``/ort`` API and its files) and any other
    ``routers``. No docs or OpenAPI pages are served: the apps are APIs for machines."""
    app = FastAPI(title="framepipe", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else "request refused"
        return error_response(error.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, "malformed request")

    if registry is not None:
        from framepipe.server.routes.registry import registry_router

        app.include_router(registry_router(registry))
    for router in routers:
        app.include_router(router)
    return app
