"""``GET /model/registry``, ``POST /model/add``, ``/model/remove``, ``/model/clear``: Roboflow's model
routes, each answering ``ModelsDescriptions`` (see ``framepipe.server.model_service``).

Example:
    >>> from framepipe.server.routes.models import models_router
    >>> from framepipe.server.service import InferenceService
    >>> sorted(route.path for route in models_router(InferenceService()).routes)  # doctest: +SKIP
    ['/model/add', '/model/clear', '/model/registry', '/model/remove']
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from framepipe.server.routes.common import Answered, answer, read_body
from framepipe.server.schemas import ModelRequest
from framepipe.server.service import InferenceService
from framepipe.server.validation import parse_body


def models_router(service: InferenceService) -> APIRouter:
    router = APIRouter()

    def key(request: Request, body_key: str | None = None) -> str | None:
        return service.authorize(request.query_params.get("api_key"), request.headers.get("authorization"), body_key)

    async def body_of(request: Request) -> ModelRequest:
        raw = await read_body(request, 1024 * 1024)
        return parse_body(ModelRequest, raw)

    @router.get("/model/registry")
    async def registry(request: Request) -> Response:
        async def handle() -> Answered:
            key(request)
            return Answered(body=service.models.describe())

        return await answer(service, request, "/model/registry", handle)

    @router.post("/model/add")
    async def add(request: Request) -> Response:
        async def handle() -> Answered:
            body = await body_of(request)
            download_key = key(request, body.api_key)
            model = await service.run(service.models.add, body.model_id, download_key)
            return Answered(body=service.models.describe(), model=model.model_id)

        return await answer(service, request, "/model/add", handle)

    @router.post("/model/remove")
    async def remove(request: Request) -> Response:
        async def handle() -> Answered:
            body = await body_of(request)
            key(request, body.api_key)
            await service.run(service.models.remove, body.model_id)
            return Answered(body=service.models.describe())

        return await answer(service, request, "/model/remove", handle)

    @router.post("/model/clear")
    async def clear(request: Request) -> Response:
        async def handle() -> Answered:
            body_key: Any = None
            raw = await read_body(request, 1024 * 1024)
            if raw.strip():
                try:
                    parsed = json.loads(raw)
                    body_key = parsed.get("api_key") if isinstance(parsed, dict) else None
                except ValueError:
                    pass
            key(request, body_key if isinstance(body_key, str) else None)
            await service.run(service.models.clear)
            return Answered(body=service.models.describe())

        return await answer(service, request, "/model/clear", handle)

    return router
