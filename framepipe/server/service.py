"""The inference server's state, injected into its routers (no globals): settings, the model service,
metrics, the URL fetcher and the worker threads that decode images and wait for inference.

Requests for one model go through the model's ``BatchingExecutor``, the one ``get_model`` and pipelines
use: requests that arrive together run as one batch, and each caller gets its own result. A request's
images are decoded on a worker thread (never on the event loop), in parallel with other requests'
inference. A list of images is decoded and submitted a batch at a time (at most ``slots`` batches
ahead: the next is decoded while the ones before it run), so a long list never holds a live
pipeline's frames behind all of it. The per-request timeout counts from the first decode.

Example:
    >>> from framepipe.server.service import InferenceService
    >>> from framepipe.server.settings import ServerSettings
    >>> service = InferenceService(ServerSettings(api_keys=("k",)))
    >>> service.key_ok("k"), service.key_ok("wrong"), service.key_ok(None)
    (True, False, False)
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import hmac
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from framepipe.errors import ApiKeyError, DeadlineExceededError, InferenceTimeoutError, WrongTaskError
from framepipe.models import Model
from framepipe.models.params import InferenceParameters, InvalidParameterError
from framepipe.predictions import FramePrediction
from framepipe.server.images import UrlFetcher, load_image
from framepipe.server.metrics import ServerMetrics
from framepipe.server.model_service import TASK_ROUTES, ModelService
from framepipe.server.settings import ServerSettings

T = TypeVar("T")
ImageLoader = Callable[[], np.ndarray]


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header.

    >>> bearer("Bearer abc"), bearer("Basic x"), bearer(None)
    ('abc', None, None)
    """
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class InferenceService:
    """Everything the inference routes share (see the module docstring)."""

    def __init__(
        self,
        settings: ServerSettings | None = None,
        models: ModelService | None = None,
        *,
        workers: int | None = None,
    ) -> None:
        self.settings = settings or ServerSettings.from_env()
        self.models = models or ModelService(
            max_active_models=self.settings.max_active_models,
            disk_cache_cleanup=self.settings.disk_cache_cleanup,
            forward_api_keys=not self.settings.api_keys,
        )
        self.metrics = ServerMetrics()
        self.fetcher = UrlFetcher(
            self.settings.allow_url_input,
            self.settings.allow_non_https_url_input,
            self.settings.url_max_bytes,
            self.settings.url_timeout_s,
        )
        self.workers = workers or max(16, 4 * (os.cpu_count() or 2))
        self.pool: ThreadPoolExecutor | None = None
        self.server_id = uuid.uuid4().hex
        self._keys = tuple(key.encode() for key in self.settings.api_keys)

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads and load the pinned and preloaded models (in the background)."""
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="framepipe-server")
            settings = self.settings
            self.models.start(settings.pinned_models, settings.preload_models, settings.preload_timeout_s)

    def stop(self) -> None:
        """Stop the worker threads (work under way finishes) and release the pinned models."""
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self.models.close()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on a worker thread."""
        if self.pool is None:
            self.start()
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(function, *args))

    # -- keys ---------------------------------------------------------------------------------------
    @property
    def secrets(self) -> tuple[str, ...]:
        return self.settings.api_keys

    def key_ok(self, offered: str | None) -> bool:
        """Whether ``offered`` is one of the server's keys (constant time; always true without keys)."""
        if not self._keys:
            return True
        given = (offered or "").encode()
        matches = [hmac.compare_digest(given, key) for key in self._keys]  # every key compared
        return offered is not None and any(matches)

    def authorize(self, query_key: str | None, header: str | None, body_key: str | None = None) -> str | None:
        """The request's key (body, then query, then ``Authorization: Bearer``), checked when the server
        has keys (``ApiKeyError`` when missing or wrong). Returns the key to download models with:
        the request's when the server has no keys of its own (Roboflow's behaviour), else none (a
        server key is never sent on to a registry)."""
        offered = body_key or query_key or bearer(header)
        if self._keys:
            if offered is None:
                raise ApiKeyError("this server needs an API key (api_key in the body or query, Authorization: Bearer)")
            if not self.key_ok(offered):
                raise ApiKeyError("the API key is not one this server accepts")
            return None
        return offered

    # -- inference ----------------------------------------------------------------------------------
    def parameters(self, model: Model, values: dict[str, Any]) -> InferenceParameters:
        """The model's parameters from a request's values (``InvalidParameterError`` for any it refuses)."""
        try:
            return model.parameters(**values)
        except TypeError as error:
            raise InvalidParameterError(str(error)) from None

    def loaders(self, images: Sequence[Any]) -> list[ImageLoader]:
        """Loaders for Roboflow's ``{type, value}`` images."""
        limit = self.settings.max_image_pixels
        return [functools.partial(load_image, item.type, item.value, limit, self.fetcher) for item in images]

    def infer(
        self,
        model_id: str,
        download_key: str | None,
        loaders: Sequence[ImageLoader],
        values: dict[str, Any],
        task: str | None = None,
        visualize: bool = False,
    ) -> tuple[str, list[dict[str, Any]]]:
        """Load (once) and hold ``model_id``, check its task, decode the images and infer them through
        the model's executor. Blocks: run it with ``run``. Returns the canonical id and one JSON each."""
        started = time.perf_counter()
        lease = self.models.acquire(model_id, download_key)
        try:
            model = lease.model
            if task is not None and model.task_type != task:
                route = TASK_ROUTES.get(model.task_type, "another route")
                raise WrongTaskError(f"model {model_id!r} is a {model.task_type!r} model: send it to {route}")
            parameters = self.parameters(model, values)
            deadline = time.monotonic() + self.settings.request_timeout_s
            images, predictions = self._predict(model, loaders, parameters, deadline)
        finally:
            lease.release()
        elapsed = time.perf_counter() - started
        answers = []
        for image, prediction in zip(images, predictions, strict=True):
            answer = {"inference_id": uuid.uuid4().hex, "time": elapsed, **prediction.to_roboflow()}
            if visualize:
                answer["visualization"] = base64.b64encode(render_jpeg(image, answer)).decode("ascii")
            answers.append(answer)
        return lease.model.model_id, answers

    def _predict(
        self, model: Model, loaders: Sequence[ImageLoader], parameters: InferenceParameters, deadline: float
    ) -> tuple[list[np.ndarray], list[FramePrediction]]:
        """Decode and submit a batch at a time, at most ``slots`` batches ahead: the next batch is
        decoded while the ones before it run."""
        executor = model.executor
        size, ahead = executor.max_batch_size, max(executor.slots, 1)
        pending: collections.deque[list[Any]] = collections.deque()
        images: list[np.ndarray] = []
        results: list[FramePrediction] = []
        try:
            for start in range(0, len(loaders), size):
                chunk = [load() for load in loaders[start : start + size]]
                images.extend(chunk)
                pending.append(executor.submit(chunk, parameters, deadline))
                while len(pending) >= ahead:
                    results.extend(self._collect(executor, pending.popleft(), deadline))
            while pending:
                results.extend(self._collect(executor, pending.popleft(), deadline))
        except BaseException:
            for futures in pending:
                for future in futures:
                    future.cancel()
            raise
        return images, results

    def _collect(self, executor: Any, futures: list[Any], deadline: float) -> list[FramePrediction]:
        timeout = self.settings.request_timeout_s
        try:
            executor.wait(futures, max(deadline - time.monotonic(), 0.001))
            return [future.result(0) for future in futures]
        except (TimeoutError, DeadlineExceededError):
            for future in futures:
                future.cancel()
            message = f"the images were not inferred within the request timeout ({timeout:g} s)"
            raise InferenceTimeoutError(message) from None


def render_jpeg(image: np.ndarray, prediction: dict[str, Any]) -> bytes:
    """``image`` with ``prediction`` drawn on it, as JPEG (``visualize_predictions``, ``format=image``)."""
    import cv2

    from framepipe.sinks.render import annotate

    drawn = annotate(image.copy(), prediction)
    ok, encoded = cv2.imencode(".jpg", drawn)
    if not ok:  # pragma: no cover - OpenCV encodes any BGR image
        raise RuntimeError("could not encode the visualization")
    return bytes(encoded.tobytes())
