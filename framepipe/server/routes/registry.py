"""The model registry as a FastAPI router: Roboflow's download API over a ``RegistryFolder``.

- ``GET|HEAD /ort/<dataset>/<version>?api_key=K`` answers ``{"ort": {...}}`` as Roboflow's API
  does, plus ``sha256`` and ``size`` of each file and ``weightsFile``.
- ``GET|HEAD /files/<dataset>/<version>/<name>`` serves a file with Starlette's ``FileResponse``
  (``Range`` / ``If-Range``, an ``ETag`` that is its sha256). When API keys are configured, file
  URLs carry a signed token (valid ``token_ttl_s``) instead of the key.

File URLs are built from ``public_url`` (the address the server was started with), never from
the request's ``Host`` header. Error answers name no server path. A ``Range`` header that is not
one well-formed range (``bytes=5-3``, thousands of digits, several ranges) is ignored, as RFC 9110
allows: the whole file is sent.

Example:
    >>> from framepipe.server.routes.registry import RegistryService, registry_router
    >>> service = RegistryService("registry", api_keys=["k"], public_url="http://models.lan:9001")  # doctest: +SKIP
    >>> router = registry_router(service)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from framepipe.artifacts.registry_folder import RegistryFolder
from framepipe.errors import ModelArtifactError, ModelNotFoundError
from framepipe.server.app import error_response

logger = logging.getLogger("framepipe.registry")
_RANGE = re.compile(r"bytes=([0-9]{1,18})?-([0-9]{1,18})?")


class RegistryService:
    """What the registry router serves: the models under ``root``, the accepted ``api_keys`` (none:
    no key needed) and the base URL written into ``/ort`` answers."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        api_keys: Iterable[str] = (),
        *,
        public_url: str = "",
        token_ttl_s: float = 3600.0,
    ) -> None:
        self.folder = RegistryFolder(root)
        self.api_keys = frozenset(k for k in api_keys if k)
        self.public_url = public_url.rstrip("/")
        self.token_ttl_s = token_ttl_s
        self._secret = secrets.token_bytes(32)

    @property
    def root(self) -> Any:
        return self.folder.root

    def token(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()

    def key_ok(self, given: str | None) -> bool:
        if not self.api_keys:
            return True
        offered = (given or "").encode()
        return any(hmac.compare_digest(offered, key.encode()) for key in self.api_keys)

    def token_ok(self, path: str, token: str | None, expires: str | None) -> bool:
        if not self.api_keys:
            return True
        try:
            deadline = int(expires or "0") if len(expires or "") < 20 else 0
        except ValueError:
            deadline = 0
        return deadline >= time.time() and hmac.compare_digest(
            (token or "").encode(), self.token(path, deadline).encode()
        )

    def file_url(self, dataset: str, version: str, name: str) -> str:
        path = f"/files/{quote(dataset)}/{quote(version)}/{quote(name)}"
        if not self.api_keys:
            return self.public_url + path
        expires = int(time.time() + self.token_ttl_s)
        return f"{self.public_url}{path}?expires={expires}&token={self.token(path, expires)}"


def usable_range(header: str | None, size: int) -> str | None:
    """``header`` when it is one well-formed byte range worth answering with 206 or 416, else
    ``None`` (the whole file is sent).

    Example:
        >>> usable_range("bytes=5-", 10), usable_range("bytes=5-3", 10), usable_range("bytes=" + "9" * 5000 + "-", 10)
        ('bytes=5-', None, None)
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (match.group(1) is None and match.group(2) is None):
        return None
    first, last = match.group(1), match.group(2)
    if first is not None and last is not None and int(last) < int(first):
        return None
    if first is None and int(last or "0") == 0:
        return None
    return header.strip()


def registry_router(service: RegistryService) -> APIRouter:
    """The ``/ort`` and ``/files`` routes of ``service``."""
    router = APIRouter()

    @router.api_route("/ort/{dataset}/{version}", methods=["GET", "HEAD"])
    def ort(dataset: str, version: str, request: Request) -> Response:
        if not service.key_ok(request.query_params.get("api_key")):
            return error_response(401, "missing or unknown API key")
        try:
            ref, answer = service.folder.describe(dataset, version)
        except ModelNotFoundError as error:
            return error_response(404, str(error))
        except ModelArtifactError as error:
            logger.error("cannot serve %s/%s: %s", dataset, version, error)
            return error_response(500, f"the registry's copy of {dataset}/{version} is broken")
        name = answer["weightsFile"]
        answer["environment"] = service.file_url(ref.dataset_id, ref.version_id, "environment.json")
        answer["model"] = service.file_url(ref.dataset_id, ref.version_id, name)
        return JSONResponse({"ort": answer})

    @router.api_route("/files/{dataset}/{version}/{name}", methods=["GET", "HEAD"])
    def files(dataset: str, version: str, name: str, request: Request) -> Response:
        path = f"/files/{quote(dataset)}/{quote(version)}/{quote(name)}"
        query = request.query_params
        if not service.token_ok(path, query.get("token"), query.get("expires")):
            return error_response(401, "missing, wrong or expired download token; ask /ort again")
        try:
            file, stat, sha256 = service.folder.file(dataset, version, name)
        except ModelNotFoundError as error:
            return error_response(404, str(error))
        headers = [(k, v) for k, v in request.scope["headers"] if k != b"range"]
        wanted = usable_range(request.headers.get("range"), stat.st_size)
        if wanted is not None:
            headers.append((b"range", wanted.encode("latin-1")))
        request.scope["headers"] = headers  # what FileResponse reads its Range from
        return FileResponse(
            file,
            stat_result=stat,
            media_type="application/octet-stream",
            headers={"etag": f'"{sha256}"', "cache-control": "no-store"},
        )

    return router
