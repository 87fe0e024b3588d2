"""Roboflow's legacy route, ``POST|GET /{dataset_id}/{version_id}``, which API v0 clients use.

The image is ``?image=<URL>``, a ``multipart/form-data`` part named ``file``, or the raw body
(``image_type=base64``, the default: base64 text; raw JPEG/PNG bytes are taken too; ``numpy`` is
refused). A POST without ``?image=`` needs a ``Content-Type``. Query parameters: ``api_key``,
``confidence`` and ``overlap`` (values of 1 and more are percents, as Roboflow reads them; confidence
at least 0.01), ``max_detections``, ``classes`` (comma list), ``mask_decode_mode``, ``tradeoff_factor``,
``response_mask_format``, ``keypoint_confidence``, ``format=json|image|image_and_json``. The task
comes from the model.

Example:
    >>> from framepipe.server.routes.legacy import percent
    >>> percent("40"), percent("0.25"), percent(None, 0.3)
    (0.4, 0.25, 0.3)
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from framepipe.errors import InputNotAllowedError, InvalidImageError, MalformedRequestError
from framepipe.models import Model
from framepipe.server.images import decode_base64, decode_bytes, image_size
from framepipe.server.routes.common import Answered, answer, read_body
from framepipe.server.service import InferenceService

FORMATS = ("json", "image", "image_and_json")
CONFIDENCE_LOWER_BOUND = 0.01


def percent(text: str | None, default: float = 0.4) -> float:
    """A threshold from the query: values of 1 and more are divided by 100."""
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise MalformedRequestError(f"malformed request: {text[:40]!r} is not a number") from None
    return value / 100 if value >= 1 else value


def _number(query: Any, name: str, kind: type, default: Any) -> Any:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        return kind(text)
    except ValueError:
        raise MalformedRequestError(f"malformed request: {name}={text[:40]!r} is not a number") from None


def task_values(model: Model, query: Any) -> dict[str, Any]:
    """The legacy query parameters the model's task takes."""
    values: dict[str, Any] = {"confidence": max(percent(query.get("confidence")), CONFIDENCE_LOWER_BOUND)}
    if model.task_type == "classification":
        return values
    values["iou_threshold"] = percent(query.get("overlap"), 0.3)
    values["max_detections"] = _number(query, "max_detections", int, 300)
    classes = query.get("classes")
    if classes:
        values["class_filter"] = [name.strip() for name in classes.split(",") if name.strip()]
    if model.task_type == "instance-segmentation":
        values["mask_decode_mode"] = query.get("mask_decode_mode") or "accurate"
        values["tradeoff_factor"] = _number(query, "tradeoff_factor", float, 0.0)
        values["response_mask_format"] = query.get("response_mask_format") or "polygon"
    if model.task_type == "keypoint-detection":
        values["keypoint_confidence"] = _number(query, "keypoint_confidence", float, 0.0)
    return values


def _raw_image(data: bytes, image_type: str, max_pixels: int) -> Any:
    if image_type == "numpy":
        raise InputNotAllowedError("image_type=numpy is refused: send base64 or image bytes (pickle is unsafe)")
    if image_type != "base64":
        raise InvalidImageError(f"unknown image_type {image_type[:40]!r}; use base64")
    if image_size(data[: 64 * 1024]) is not None or data[:2] == b"\xff\xd8":
        return decode_bytes(data, max_pixels)
    return decode_base64(data, max_pixels)


def legacy_router(service: InferenceService) -> APIRouter:
    router = APIRouter()

    @router.api_route("/{dataset_id}/{version_id}", methods=["GET", "POST"])
    async def legacy(dataset_id: str, version_id: str, request: Request) -> Response:
        async def handle() -> Answered:
            query = request.query_params
            download_key = service.authorize(query.get("api_key"), request.headers.get("authorization"))
            form = query.get("format") or "json"
            if form not in FORMATS:
                raise MalformedRequestError(f"malformed request: format must be one of {', '.join(FORMATS)}")
            limit = service.settings.max_image_pixels
            url = query.get("image")
            if url:
                loader: Any = functools.partial(lambda u: decode_bytes(service.fetcher.fetch(u), limit), url)
            elif request.method == "GET":
                raise MalformedRequestError("malformed request: a GET needs ?image=<URL>")
            else:
                loader = await _body_loader(request)
            model_id = f"{dataset_id}/{version_id}"
            lease = await service.run(service.models.acquire, model_id, download_key)
            try:
                values = task_values(lease.model, query)
                canonical, answers = await service.run(
                    service.infer, model_id, download_key, [loader], values, None, form != "json"
                )
            finally:
                lease.release()
            result = answers[0]
            if form == "image":
                image = base64_jpeg(result.pop("visualization"))
                return Answered(response=Response(image, media_type="image/jpeg"), model=canonical)
            return Answered(body=result, model=canonical)

        return await answer(service, request, "/{dataset_id}/{version_id}", handle)

    async def _body_loader(request: Request) -> Any:
        content_type = request.headers.get("content-type")
        if not content_type:
            raise MalformedRequestError("Content-Type header not provided with request.")
        raw = await read_body(request, service.settings.max_body_bytes)
        limit = service.settings.max_image_pixels
        image_type = request.query_params.get("image_type") or "base64"
        if content_type.lower().startswith("multipart/form-data"):
            request._body = raw  # the form parser reads the body already read (and capped)
            form = await request.form()
            part = form.get("file")
            if part is None or isinstance(part, str):
                raise InvalidImageError("the multipart body has no file part named 'file'")
            data = await part.read()
            await form.close()
            return functools.partial(_raw_image, data, "base64", limit)
        return functools.partial(_raw_image, raw, image_type, limit)

    return router


def base64_jpeg(text: str) -> bytes:
    import base64

    return base64.b64decode(text)
