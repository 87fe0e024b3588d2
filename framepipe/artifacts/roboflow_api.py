"""The client side of Roboflow's model download API, ``GET {API_BASE_URL}/ort/{dataset}/{version}``.

The answer is ``{"ort": {"type", "modelType", "classes", "colors", "environment": URL, "model": URL,
...}}`` (Roboflow's fields). framepipe's own registry adds, inside
``ort``: ``sha256`` and ``size`` (``{"weights.onnx": ..., "environment.json": ...}``) and
``weightsFile`` (the name to store the weights under). Every server-given file name is checked
with ``safe_file_name``.

Example:
    >>> from framepipe.artifacts.roboflow_api import ort_url
    >>> from framepipe.artifacts.model_id import parse_model_id
    >>> from framepipe.artifacts.settings import RegistrySettings
    >>> settings = RegistrySettings(api_base_url="http://127.0.0.1:9001", api_key="K", device_id="cam-1")
    >>> ort_url(settings, parse_model_id("ds/3"))
    'http://127.0.0.1:9001/ort/ds/3?nocache=true&device=cam-1&dynamic=true&api_key=K'
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlencode

import requests

from framepipe.artifacts.folder import control_character, parse_json
from framepipe.artifacts.layout import (
    ENVIRONMENT_FILE,
    MODEL_TYPE_DEFAULTS,
    WEIGHTS_FILE_NAMES,
    weights_file_for,
)
from framepipe.artifacts.model_id import ModelRef, safe_file_name
from framepipe.artifacts.settings import RegistrySettings
from framepipe.artifacts.transport import (
    RetryableError,
    error_for_status,
    is_retryable_status,
    read_bounded,
    translate_request_error,
    with_retries,
)
from framepipe.artifacts.urls import public_url, stored_url
from framepipe.errors import MalformedRegistryResponseError, ModelArtifactError, UnsafePathError

logger = logging.getLogger("framepipe.artifacts")
MAX_ORT_BYTES = 8 << 20
"""The most an ``/ort`` answer may hold, decoded (Roboflow's are a few KB)."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RemoteFile:
    """A file to download: the name it gets in the cache, its URL (which may hold a signature, so it
    is kept out of ``repr``) and what the registry announced about it."""

    name: str
    url: str = field(repr=False)
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class OrtModel:
    """A parsed ``/ort`` answer."""

    ref: ModelRef
    task_type: str
    model_type: str
    classes: list[str]
    colors: dict[str, Any]
    weights: RemoteFile
    environment: RemoteFile
    keypoints_metadata: Any = None
    source: str = ""
    """The request URL without secrets (for the manifest)."""


def ort_url(settings: RegistrySettings, ref: ModelRef) -> str:
    """The ``/ort`` request URL, parameters in Roboflow's order (``api_key`` left out when there is
    none or it is ``"local"``)."""
    params = [("nocache", "true"), ("device", settings.device_id), ("dynamic", "true")]
    if settings.api_key and settings.api_key != "local":
        params.append(("api_key", settings.api_key))
    path = f"/ort/{quote(ref.dataset_id, safe='')}/{quote(ref.version_id, safe='')}"
    return f"{settings.api_base_url}{path}?{urlencode(params)}"


def _announced(ort: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    table = ort.get(key) or {}
    if not isinstance(table, dict):
        raise MalformedRegistryResponseError(f"{where}: field ort.{key} must be an object of file names")
    for name in table:
        safe_file_name(name, f"ort.{key} from {where}")
    return table


def parse_ort(data: Any, ref: ModelRef, where: str) -> OrtModel:
    """Check an ``/ort`` answer and turn it into an ``OrtModel`` (``where`` names the registry in
    messages). Server-given file names that are not plain names raise ``UnsafePathError``."""
    ort = data.get("ort") if isinstance(data, dict) else None
    if not isinstance(ort, dict):
        raise MalformedRegistryResponseError(f"{where} answered for model {ref.model_id!r} without an 'ort' object")
    for key in ("model", "environment"):
        if not isinstance(ort.get(key), str) or not ort[key].startswith(("http://", "https://")):
            raise MalformedRegistryResponseError(
                f"{where} answered for model {ref.model_id!r} without a URL in ort.{key}: the model is not "
                "available for download in ONNX form"
            )
    task_type = ort.get("type") or "object-detection"
    model_type = ort.get("modelType")
    if not isinstance(task_type, str) or (model_type is not None and not isinstance(model_type, str)):
        raise MalformedRegistryResponseError(f"{where}: ort.type and ort.modelType must be strings")
    if not model_type or model_type == "ort":
        model_type = MODEL_TYPE_DEFAULTS.get(task_type, "yolov8n")
    classes = ort.get("classes") or []
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise MalformedRegistryResponseError(f"{where}: ort.classes must be a list of class names")
    for number, name in enumerate(classes):
        bad = control_character(name)
        if bad is not None:
            raise MalformedRegistryResponseError(
                f"{where}: class {number} in ort.classes holds the control character {bad!r} (line breaks and "
                "terminal escapes are refused)"
            )
    colors = ort.get("colors") or {}
    if not isinstance(colors, dict):
        raise MalformedRegistryResponseError(f"{where}: ort.colors must be an object")
    sha256 = _announced(ort, "sha256", where)
    sizes = _announced(ort, "size", where)
    weights_name = ort.get("weightsFile") or weights_file_for(model_type)
    safe_file_name(weights_name, f"ort.weightsFile from {where}")
    if weights_name not in WEIGHTS_FILE_NAMES:
        raise UnsafePathError(
            f"{where} asked to store the weights of {ref.model_id!r} as {weights_name!r}; framepipe stores weights "
            f"only as {' or '.join(WEIGHTS_FILE_NAMES)}"
        )

    def remote(name: str, url: str) -> RemoteFile:
        digest = sha256.get(name)
        if digest is not None and (not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower())):
            raise MalformedRegistryResponseError(f"{where}: ort.sha256[{name!r}] is not a hex sha256")
        size = sizes.get(name)
        if size is not None and (not isinstance(size, int) or size < 0):
            raise MalformedRegistryResponseError(f"{where}: ort.size[{name!r}] is not a byte count")
        return RemoteFile(name, url, digest.lower() if digest else None, size)

    return OrtModel(
        ref=ref,
        task_type=task_type,
        model_type=model_type,
        classes=list(classes),
        colors=colors,
        weights=remote(weights_name, ort["model"]),
        environment=remote(ENVIRONMENT_FILE, ort["environment"]),
        keypoints_metadata=ort.get("keypoints_metadata"),
    )


def fetch_ort(session: requests.Session, settings: RegistrySettings, ref: ModelRef) -> OrtModel:
    """Ask the registry for ``ref`` (retrying 5xx, timeouts and broken connections)."""
    url = ort_url(settings, ref)
    subject = f"model {ref.model_id!r}"
    where = public_url(settings.api_base_url)

    def attempt(number: int) -> OrtModel:
        logger.debug("GET %s (attempt %d)", public_url(url), number)
        try:
            with session.get(
                url,
                headers={"Accept-Encoding": "identity"},
                stream=True,
                timeout=(settings.connect_timeout_s, settings.read_timeout_s),
            ) as response:
                if response.status_code >= 400:
                    failure = error_for_status(response.status_code, subject, where)
                    if is_retryable_status(response.status_code):
                        raise RetryableError(failure)
                    raise failure
                body = read_bounded(response, MAX_ORT_BYTES, f"the request for {subject}", where)
        except requests.RequestException as error:
            raise translate_request_error(error, subject, url, settings.secrets) from None
        try:
            data = parse_json(body, "the answer") if body else None
        except ModelArtifactError as error:
            raise MalformedRegistryResponseError(
                f"{where} answered the request for {subject} with something that is not JSON "
                f"({response.headers.get('Content-Type', 'no content type')}, {len(body)} bytes: {error})"
            ) from None
        return replace(parse_ort(data, ref, where), source=stored_url(url))

    return with_retries(attempt, settings, f"registry request for {subject}")
