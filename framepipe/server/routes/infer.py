"""``POST /infer/object_detection``, ``/infer/instance_segmentation``, ``/infer/classification`` and
``/infer/keypoints_detection``: Roboflow's bodies (``framepipe.server.schemas``), one image or a list,
answered with the task's JSON (a dict, or a list for a list). A model not yet loaded is loaded by the
first request; the body is parsed and the images decoded on worker threads, and the images go through
the model's batching executor with every other caller's.

Example:
    >>> from framepipe.server.routes.infer import infer_router
    >>> from framepipe.server.service import InferenceService
    >>> sorted(route.path for route in infer_router(InferenceService()).routes)  # doctest: +SKIP
    ['/infer/classification', '/infer/instance_segmentation', '/infer/keypoints_detection', '/infer/object_detection']
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from framepipe.server.routes.common import Answered, answer, read_body
from framepipe.server.schemas import REQUESTS, InferenceRequest
from framepipe.server.service import InferenceService
from framepipe.server.validation import parse_body


def infer_router(service: InferenceService) -> APIRouter:
    router = APIRouter()

    def add_route(name: str, task: str, schema: type[InferenceRequest]) -> None:
        path = f"/infer/{name}"

        async def handler(request: Request) -> Response:
            async def handle() -> Answered:
                raw = await read_body(request, service.settings.max_body_bytes)
                body = await service.run(parse_body, schema, raw)
                download_key = service.authorize(
                    request.query_params.get("api_key"), request.headers.get("authorization"), body.api_key
                )
                model_id, answers = await service.run(
                    service.infer,
                    body.model_id,
                    download_key,
                    service.loaders(body.images()),
                    body.task_parameters(),
                    task,
                    body.visualize_predictions,
                )
                return Answered(body=answers if body.is_list else answers[0], model=model_id)

            return await answer(service, request, path, handle)

        handler.__name__ = f"infer_{name}"
        router.add_api_route(path, handler, methods=["POST"])

    for name, (task, schema) in REQUESTS.items():
        add_route(name, task, schema)
    return router
