"""framepipe's HTTP client SDK: ``inference_sdk``'s ``InferenceHTTPClient`` and
``InferenceConfiguration``, with their names and behaviour, for ``framepipe serve`` or Roboflow's
inference server. Importing it needs neither onnxruntime nor FastAPI.

Example:
    >>> from framepipe.client import InferenceConfiguration, InferenceHTTPClient
    >>> client = InferenceHTTPClient(api_url="http://127.0.0.1:9001", api_key="KEY")
    >>> client = client.configure(InferenceConfiguration(confidence_threshold=0.5, max_concurrent_requests=4))
    >>> client.load_model("my-project/3")  # doctest: +SKIP
    >>> client.infer("image.jpg", model_id="my-project/3")["predictions"]  # doctest: +SKIP
"""

from framepipe.client.entities import (
    ApiKeyTransport,
    HTTPClientMode,
    InferenceConfiguration,
    ModelDescription,
    RegisteredModels,
    ServerInfo,
    VisualisationResponseFormat,
)
from framepipe.client.errors import (
    APIKeyNotProvided,
    EncodingError,
    HTTPCallErrorError,
    HTTPClientError,
    HTTPServerConnectionError,
    InvalidInputFormatError,
    InvalidModelIdentifier,
    InvalidParameterError,
    ModelNotInitializedError,
    ModelNotSelectedError,
    ModelTaskTypeNotSupportedError,
    WrongClientModeError,
)
from framepipe.client.http_client import InferenceHTTPClient

__all__ = [
    "APIKeyNotProvided",
    "ApiKeyTransport",
    "EncodingError",
    "HTTPCallErrorError",
    "HTTPClientError",
    "HTTPClientMode",
    "HTTPServerConnectionError",
    "InferenceConfiguration",
    "InferenceHTTPClient",
    "InvalidInputFormatError",
    "InvalidModelIdentifier",
    "InvalidParameterError",
    "ModelDescription",
    "ModelNotInitializedError",
    "ModelNotSelectedError",
    "ModelTaskTypeNotSupportedError",
    "RegisteredModels",
    "ServerInfo",
    "VisualisationResponseFormat",
    "WrongClientModeError",
]
