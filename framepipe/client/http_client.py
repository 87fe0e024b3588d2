"""``InferenceHTTPClient``: ``inference_sdk``'s client, with its names and behaviour, for
``framepipe serve`` and for Roboflow's own inference server alike.

API v1 (any URL but Roboflow's hosted ones): the model registry routes and
``POST /infer/{task}`` with JSON bodies, ``max_batch_size`` images a request. API v0 (Roboflow's
hosted URLs, or ``select_api_v0()``): ``POST /{project}/{version}``, one image a request, as the
raw base64 body. Either way up to ``max_concurrent_requests`` requests are in flight at once, in
a sliding pool, and retried on 429/503/504 with backoff. Importing it needs neither onnxruntime
nor FastAPI.

Example:
    >>> from framepipe.client import InferenceConfiguration, InferenceHTTPClient
    >>> client = InferenceHTTPClient("http://127.0.0.1:9001", api_key="KEY")
    >>> client.client_mode.value, InferenceHTTPClient("https://detect.roboflow.com").client_mode.value
    ('v1', 'v0')
    >>> client.configure(InferenceConfiguration(max_batch_size=8, max_concurrent_requests=4))  # doctest: +ELLIPSIS
    InferenceHTTPClient(api_url='http://127.0.0.1:9001', mode=v1, ...)
    >>> with client.use_model("my-project/3"):  # doctest: +SKIP
    ...     client.infer(["a.jpg", "b.jpg"])  # two results, in order
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framepipe.artifacts.aliases import resolve_alias
from framepipe.client.entities import (
    ALL_ROBOFLOW_API_URLS,
    CLASSIFICATION_TASK,
    INSTANCE_SEGMENTATION_TASK,
    KEYPOINTS_DETECTION_TASK,
    OBJECT_DETECTION_TASK,
    ApiKeyTransport,
    HTTPClientMode,
    InferenceConfiguration,
    ModelDescription,
    RegisteredModels,
    ServerInfo,
)
from framepipe.client.errors import (
    HTTPClientError,
    InvalidInputFormatError,
    InvalidModelIdentifier,
    ModelNotInitializedError,
    ModelNotSelectedError,
    ModelTaskTypeNotSupportedError,
    WrongClientModeError,
)
from framepipe.client.executor import RequestData, raise_for_status, run_all, send
from framepipe.client.images import ImagesReference, PreparedImage, convert_visualisation, prepare_image, scale_back

NEW_INFERENCE_ENDPOINTS = {
    INSTANCE_SEGMENTATION_TASK: "/infer/instance_segmentation",
    OBJECT_DETECTION_TASK: "/infer/object_detection",
    CLASSIFICATION_TASK: "/infer/classification",
    KEYPOINTS_DETECTION_TASK: "/infer/keypoints_detection",
}
JSON_HEADERS = {"Content-Type": "application/json"}


def determine_client_mode(api_url: str) -> HTTPClientMode:
    """V0 for Roboflow's hosted APIs, V1 for everything else (a self-hosted server)."""
    return HTTPClientMode.V0 if api_url.startswith(ALL_ROBOFLOW_API_URLS) else HTTPClientMode.V1


def _unwrap(results: list[Any]) -> Any:
    # inference_sdk's unwrap_single_element_list: one result comes back alone, even from a list of one
    return results[0] if len(results) == 1 else results


class InferenceHTTPClient:
    """A client of an inference server at ``api_url`` (``inference_sdk.InferenceHTTPClient``)."""

    @classmethod
    def init(cls, api_url: str, api_key: str | None = None) -> InferenceHTTPClient:
        return cls(api_url=api_url, api_key=api_key)

    def __init__(self, api_url: str, api_key: str | None = None) -> None:
        self.__api_url = api_url.rstrip("/")
        self.__api_key = api_key
        self.__configuration = InferenceConfiguration.init_default()
        self.__client_mode = determine_client_mode(self.__api_url)
        self.__selected_model: str | None = None

    def __repr__(self) -> str:  # never the key
        return (
            f"InferenceHTTPClient(api_url={self.__api_url!r}, mode={self.__client_mode.value}, "
            f"model={self.__selected_model!r}, key={'set' if self.__api_key else 'none'})"
        )

    # -- configuration --------------------------------------------------------------------------
    @property
    def inference_configuration(self) -> InferenceConfiguration:
        return self.__configuration

    @property
    def client_mode(self) -> HTTPClientMode:
        return self.__client_mode

    @property
    def selected_model(self) -> str | None:
        return self.__selected_model

    def configure(self, inference_configuration: InferenceConfiguration) -> InferenceHTTPClient:
        if not isinstance(inference_configuration, InferenceConfiguration):
            raise TypeError("configure() takes an InferenceConfiguration")
        self.__configuration = inference_configuration
        return self

    @contextmanager
    def use_configuration(self, inference_configuration: InferenceConfiguration) -> Iterator[InferenceHTTPClient]:
        previous = self.__configuration
        self.configure(inference_configuration)
        try:
            yield self
        finally:
            self.__configuration = previous

    def select_api_v0(self) -> InferenceHTTPClient:
        self.__client_mode = HTTPClientMode.V0
        return self

    def select_api_v1(self) -> InferenceHTTPClient:
        self.__client_mode = HTTPClientMode.V1
        return self

    @contextmanager
    def _use_mode(self, mode: HTTPClientMode) -> Iterator[InferenceHTTPClient]:
        previous, self.__client_mode = self.__client_mode, mode
        try:
            yield self
        finally:
            self.__client_mode = previous

    def use_api_v0(self) -> Any:
        """``with client.use_api_v0():`` API v0 inside the block."""
        return self._use_mode(HTTPClientMode.V0)

    def use_api_v1(self) -> Any:
        """``with client.use_api_v1():`` API v1 inside the block."""
        return self._use_mode(HTTPClientMode.V1)

    def select_model(self, model_id: str) -> InferenceHTTPClient:
        self.__selected_model = model_id
        return self

    @contextmanager
    def use_model(self, model_id: str) -> Iterator[InferenceHTTPClient]:
        previous, self.__selected_model = self.__selected_model, model_id
        try:
            yield self
        finally:
            self.__selected_model = previous

    # -- plumbing ------------------------------------------------------------------------------
    def _headers(self, base: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(base or {})
        if self.__api_key and self.__configuration.transport is not ApiKeyTransport.LEGACY:
            headers["Authorization"] = f"Bearer {self.__api_key}"
        return headers

    def _key_fields(self) -> dict[str, str]:
        """``{"api_key": ...}`` for a body or query (none in ``header`` transport or without a key)."""
        if not self.__api_key or self.__configuration.transport is ApiKeyTransport.HEADER:
            return {}
        return {"api_key": self.__api_key}

    def _call(self, request: RequestData) -> Any:
        config = self.__configuration
        response = send(
            request,
            attempts=config.retry_attempts,
            backoff_s=config.retry_backoff_s,
            backoff_max_s=config.retry_backoff_max_s,
            timeout_s=config.request_timeout_s,
            secret=self.__api_key,
        )
        try:
            raise_for_status(response, request, self.__api_key)
            if response.headers.get("Content-Type", "").startswith("image/"):
                return {"visualization": response.content}
            try:
                return response.json()
            except ValueError:
                raise HTTPClientError(f"{request.route} answered HTTP {response.status_code} without JSON") from None
        finally:
            response.close()

    def _ensure_v1(self) -> None:
        if self.__client_mode is not HTTPClientMode.V1:
            raise WrongClientModeError("Use client mode `v1` to run this operation.")

    def _model_to_use(self, model_id: str | None) -> str:
        chosen = model_id or self.__selected_model
        if not chosen:
            raise ModelNotSelectedError("No model was selected to be used: pass model_id or call select_model().")
        return resolve_alias(chosen)

    # -- server and models ---------------------------------------------------------------------
    def get_server_info(self) -> ServerInfo:
        """``GET /info``."""
        return ServerInfo.from_dict(self._call(RequestData("GET", f"{self.__api_url}/info", headers=self._headers())))

    def list_loaded_models(self) -> RegisteredModels:
        """``GET /model/registry``: the models the server holds."""
        self._ensure_v1()
        request = RequestData(
            "GET", f"{self.__api_url}/model/registry", params=self._key_fields() or None, headers=self._headers()
        )
        return RegisteredModels.from_dict(self._call(request))

    def load_model(self, model_id: str, set_as_default: bool = False) -> RegisteredModels:
        """``POST /model/add``: the server loads ``model_id`` (downloading it if need be)."""
        self._ensure_v1()
        model_id = resolve_alias(model_id)
        body = {"model_id": model_id, **self._key_fields()}
        models = self._call(
            RequestData("POST", f"{self.__api_url}/model/add", json=body, headers=self._headers(JSON_HEADERS))
        )
        if set_as_default:
            self.__selected_model = model_id
        return RegisteredModels.from_dict(models)

    def unload_model(self, model_id: str) -> RegisteredModels:
        """``POST /model/remove``."""
        self._ensure_v1()
        resolved = resolve_alias(model_id)
        request = RequestData(
            "POST", f"{self.__api_url}/model/remove", json={"model_id": resolved}, headers=self._headers(JSON_HEADERS)
        )
        models = self._call(request)
        if self.__selected_model in (model_id, resolved):
            self.__selected_model = None
        return RegisteredModels.from_dict(models)

    def unload_all_models(self) -> RegisteredModels:
        """``POST /model/clear``."""
        self._ensure_v1()
        models = self._call(RequestData("POST", f"{self.__api_url}/model/clear", headers=self._headers()))
        self.__selected_model = None
        return RegisteredModels.from_dict(models)

    def get_model_description(self, model_id: str, allow_loading: bool = True) -> ModelDescription:
        """The server's description of ``model_id``; loads it first when it is not loaded and
        ``allow_loading``."""
        self._ensure_v1()
        resolved = resolve_alias(model_id)
        description = self.list_loaded_models().find(resolved)
        if description is None and allow_loading:
            description = self.load_model(resolved).find(resolved)
        if description is None:
            raise ModelNotInitializedError(
                f"Model {model_id} (de-aliased: {resolved}) is not initialised and cannot retrieve its description."
            )
        return description

    # -- inference -----------------------------------------------------------------------------
    def infer(self, inference_input: ImagesReference | Sequence[ImagesReference], model_id: str | None = None) -> Any:
        """Predictions for one image (a dict) or a list of them (a list, in order; a list of one
        gives a dict, as in ``inference_sdk``)."""
        if self.__client_mode is HTTPClientMode.V0:
            return self.infer_from_api_v0(inference_input, model_id)
        return self.infer_from_api_v1(inference_input, model_id)

    def _prepare(self, inputs: Any, max_size: tuple[int, int] | None) -> list[PreparedImage]:
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise InvalidInputFormatError("no image given: infer() takes an image or a non-empty list of them")
        return [prepare_image(item, max_size) for item in items]

    def _finish(self, requests_data: list[RequestData]) -> Any:
        responses = run_all(requests_data, self.__configuration.max_concurrent_requests, self._call)
        results: list[Any] = []
        expected = self.__configuration.output_visualisation_format
        for request, response in zip(requests_data, responses, strict=True):
            answers = response if isinstance(response, list) else [response]
            if len(answers) != len(request.images):
                raise InvalidInputFormatError(
                    f"{request.route} answered {len(answers)} results for {len(request.images)} images"
                )
            for answer, image in zip(answers, request.images, strict=True):
                if isinstance(answer, dict) and answer.get("visualization") is not None:
                    answer["visualization"] = convert_visualisation(answer["visualization"], expected)
                results.append(scale_back(answer, image))
        return _unwrap(results)

    def infer_from_api_v1(self, inference_input: Any, model_id: str | None = None) -> Any:
        """``POST /infer/{task}``: the route from the model's task (the model loaded first if need be)."""
        self._ensure_v1()
        model = self._model_to_use(model_id)
        description = self.get_model_description(model)
        endpoint = NEW_INFERENCE_ENDPOINTS.get(description.task_type)
        if endpoint is None:
            task = description.task_type
            raise ModelTaskTypeNotSupportedError(f"Model task {task} is not supported by API v1 client.")
        config = self.__configuration
        max_size = None
        if not config.client_downsizing_disabled:
            max_size = (config.default_max_input_size, config.default_max_input_size)
            if description.input_width and description.input_height:
                max_size = (description.input_width, description.input_height)
        images = self._prepare(inference_input, max_size)
        payload = {
            **self._key_fields(),
            "model_id": model,
            **config.to_api_call_parameters(HTTPClientMode.V1, description.task_type),
        }
        url, size = f"{self.__api_url}{endpoint}", config.max_batch_size
        requests_data = []
        for start in range(0, len(images), size):
            chunk = images[start : start + size]
            encoded = [{"type": "base64", "value": image.value} for image in chunk]
            body = {**payload, "image": encoded[0] if len(encoded) == 1 else encoded}
            query = config.to_api_v1_query_parameters()
            headers = self._headers(JSON_HEADERS)
            requests_data.append(RequestData("POST", url, query, body, headers=headers, images=chunk))
        return self._finish(requests_data)

    def infer_from_api_v0(self, inference_input: Any, model_id: str | None = None) -> Any:
        """``POST /{project}/{version}``, one image a request, the base64 image as the body."""
        model = self._model_to_use(model_id)
        chunks = model.split("/")
        if len(chunks) != 2 or not all(chunks):
            raise InvalidModelIdentifier(f"Invalid model id: {model}. Expected format: project_id/model_version_id.")
        config = self.__configuration
        size = None if config.client_downsizing_disabled else (config.default_max_input_size,) * 2
        images = self._prepare(inference_input, size)
        params = {**self._key_fields(), **config.to_legacy_call_parameters()}
        url, headers = f"{self.__api_url}/{chunks[0]}/{chunks[1]}", self._headers(JSON_HEADERS)
        requests_data = [RequestData("POST", url, params, data=i.value, headers=headers, images=[i]) for i in images]
        return self._finish(requests_data)

    def infer_on_stream(
        self, input_uri: str, model_id: str | None = None
    ) -> Iterator[tuple[str | int, np.ndarray, Any]]:
        """``(reference, frame, prediction)`` for each image of a folder (sorted, by the
        configuration's extensions) or each frame of a video that OpenCV opens, one ``infer`` each."""
        if os.path.isdir(input_uri):
            extensions = {e.lower() for e in self.__configuration.image_extensions_for_directory_scan or ()}
            for path in sorted(Path(input_uri).iterdir()):
                if path.suffix.lstrip(".").lower() in extensions:
                    frame = cv2.imread(str(path))
                    if frame is not None:
                        yield str(path), frame, self.infer(frame, model_id)
            return
        capture = cv2.VideoCapture(int(input_uri) if input_uri.isdigit() else input_uri)
        try:
            if not capture.isOpened():
                raise InvalidInputFormatError(f"{input_uri!r} is neither a folder nor a video that can be opened")
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                index += 1
                yield index, frame, self.infer(frame, model_id)
        finally:
            capture.release()

    # -- asynchronous twins (the same calls on a worker thread) ---------------------------------
    async def infer_async(self, inference_input: Any, model_id: str | None = None) -> Any:
        return await asyncio.to_thread(self.infer, inference_input, model_id)

    async def infer_from_api_v0_async(self, inference_input: Any, model_id: str | None = None) -> Any:
        return await asyncio.to_thread(self.infer_from_api_v0, inference_input, model_id)

    async def infer_from_api_v1_async(self, inference_input: Any, model_id: str | None = None) -> Any:
        return await asyncio.to_thread(self.infer_from_api_v1, inference_input, model_id)

    async def get_model_description_async(self, model_id: str, allow_loading: bool = True) -> ModelDescription:
        return await asyncio.to_thread(self.get_model_description, model_id, allow_loading)

    async def list_loaded_models_async(self) -> RegisteredModels:
        return await asyncio.to_thread(self.list_loaded_models)

    async def load_model_async(self, model_id: str, set_as_default: bool = False) -> RegisteredModels:
        return await asyncio.to_thread(self.load_model, model_id, set_as_default)

    async def unload_model_async(self, model_id: str) -> RegisteredModels:
        return await asyncio.to_thread(self.unload_model, model_id)

    async def unload_all_models_async(self) -> RegisteredModels:
        return await asyncio.to_thread(self.unload_all_models)
