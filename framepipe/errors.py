"""Errors framepipe raises, each saying what went wrong and what to check.

Every error derives from ``FramepipeError``; the ones about missing things also derive from the
matching built-in (``FileNotFoundError``, ``LookupError``) so that generic handlers still work.

Example:
    >>> from framepipe.errors import FramepipeError, ModelNotFoundError
    >>> issubclass(ModelNotFoundError, FramepipeError) and issubclass(ModelNotFoundError, LookupError)
    True
"""

from __future__ import annotations


class FramepipeError(Exception):
    """Base class of every error framepipe raises on purpose."""


# -- artifacts ------------------------------------------------------------------------------------
class ModelNotFoundError(FramepipeError, LookupError):
    """A model id or path names no model that framepipe can find."""


class InvalidModelIdError(FramepipeError, ValueError):
    """A model id is not of the form ``dataset_id/version_id`` or would escape the cache folder."""


class ModelArtifactError(FramepipeError):
    """A model's files are present but unusable: malformed ``environment.json``, class names that
    disagree with the network, and the like."""


class UnsafePathError(InvalidModelIdError):
    """A model id or a file name given by a registry would reach outside the model's cache folder
    (``..``, an absolute path, a separator where none belongs)."""


class ModelOfflineError(ModelNotFoundError):
    """Offline mode (``FRAMEPIPE_OFFLINE=1`` or ``OFFLINE_MODE=True``) is on and the model is not
    complete in the cache; the message names the folder looked in."""


class ModelIntegrityError(ModelArtifactError):
    """A model file disagrees with its manifest or with the sha256 / size the registry announced;
    it is never loaded."""


class ModelCacheError(FramepipeError, OSError):
    """The model cache folder cannot be written (permissions, a read-only file system) when a
    download or a lock needs it."""


class ModelCacheLockTimeout(FramepipeError, TimeoutError):
    """Another process held a model's download lock longer than the lock timeout with no progress."""


class ModelDownloadError(FramepipeError):
    """Base class of errors while asking a model registry for a model or downloading its files."""


class RegistryUnsuccessfulRequestError(ModelDownloadError):
    """The registry answered an HTTP error status (Roboflow: ``RoboflowAPIUnsuccessfulRequestError``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RegistryNotAuthorizedError(RegistryUnsuccessfulRequestError):
    """HTTP 401: the API key is missing or not accepted."""


class RegistryPaymentRequiredError(RegistryUnsuccessfulRequestError):
    """HTTP 402: the workspace's plan does not cover this request."""


class RegistryForbiddenError(RegistryUnsuccessfulRequestError):
    """HTTP 403: the API key has no access to this model."""


class RegistryModelNotFoundError(RegistryUnsuccessfulRequestError, ModelNotFoundError):
    """HTTP 404: the registry has no such model (or file)."""


class RegistryUsagePausedError(RegistryUnsuccessfulRequestError):
    """HTTP 423: usage of the workspace is paused."""


class RegistryTimeoutError(ModelDownloadError, TimeoutError):
    """The registry sent nothing for longer than the read timeout, on every attempt."""


class RegistryConnectionError(ModelDownloadError, ConnectionError):
    """The registry could not be reached, or the connection broke, on every attempt."""


class MalformedRegistryResponseError(ModelDownloadError):
    """The registry's answer is not the JSON the ``/ort`` API documents."""


# -- models ---------------------------------------------------------------------------------------
class ModelLoadError(ModelArtifactError):
    """ONNX Runtime could not load the weights (truncated or corrupt file, unsupported opset)."""


class UnsupportedModelOutputError(ModelArtifactError):
    """No decoder knows the model's output layout."""


class ExecutionProviderError(FramepipeError):
    """An execution provider that was asked for explicitly cannot run here."""


class DeadlineExceededError(FramepipeError, TimeoutError):
    """A frame waited in a model's executor past the deadline its caller gave."""


# -- sources --------------------------------------------------------------------------------------
class SourceError(FramepipeError):
    """Base class of errors about video sources."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A video file does not exist."""


class InvalidVideoError(SourceError):
    """A file or stream holds no video that FFmpeg can decode."""


class SourceConnectionError(SourceError, ConnectionError):
    """A stream or camera could not be opened or was lost."""


class SourceAccessError(SourceConnectionError):
    """A stream refused us for good: wrong credentials, no such path (401, 403, 404)."""


class StreamOperationNotAllowedError(SourceError):
    """``pause`` / ``mute`` / ``resume`` asked of a source in a state that does not allow it."""


# -- pipeline -------------------------------------------------------------------------------------
class PipelineStateError(FramepipeError, RuntimeError):
    """A pipeline method was called in a state that does not allow it (e.g. ``start`` twice)."""


class PipelineSinkError(FramepipeError, RuntimeError):
    """Raised by ``join()`` when ``stop_on_sink_error`` stopped the pipeline: a sink raised."""


class SinkSpecError(FramepipeError, ValueError):
    """A sink spec string (``jsonl:PATH``, ``udp:HOST:PORT``, ...) or a pipeline spec is malformed."""


# -- inference server -----------------------------------------------------------------------------
class ServerRequestError(FramepipeError):
    """Base class of the errors an inference server answers with a 4xx status: what the client
    sent cannot be served. The message is safe to send back (no paths, no keys)."""


class InvalidImageError(ServerRequestError, ValueError):
    """An input image cannot be decoded (corrupt, empty, not an image, an unknown format)."""


class ImageTooLargeError(ServerRequestError, ValueError):
    """An input image has more pixels than the server's cap (a decompression bomb), or a URL
    input is larger than the download cap."""


class InputNotAllowedError(ServerRequestError):
    """An input kind the server refuses: numpy/pickle, URLs when ``ALLOW_URL_INPUT`` is off, a
    non-https URL when ``ALLOW_NON_HTTPS_URL_INPUT`` is off, a redirect to another scheme."""


class ImageDownloadError(ServerRequestError):
    """A URL input could not be fetched (unreachable, timed out, an error status)."""


class RequestTooLargeError(ServerRequestError):
    """A request body is larger than the server's cap."""


class ApiKeyError(ServerRequestError):
    """The server requires an API key and the request carried none, or a wrong one."""


class WrongTaskError(ServerRequestError, ValueError):
    """A model was asked for on the route of another task (a classifier on
    ``/infer/object_detection``)."""


class MalformedRequestError(ServerRequestError, ValueError):
    """A request body is not JSON, or not the fields the route takes (HTTP 422, as FastAPI answers)."""


class InferenceTimeoutError(ServerRequestError, TimeoutError):
    """A request's images were not inferred within the server's per-request timeout."""


def http_status(error: BaseException) -> int:
    """The HTTP status an inference server answers ``error`` with (the first match along its MRO
    in ``HTTP_STATUS``; 500 for anything else).

    Example:
        >>> http_status(ModelNotFoundError("x")), http_status(RegistryTimeoutError("x")), http_status(KeyError())
        (404, 504, 500)
    """
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500


HTTP_STATUS: dict[type[BaseException], int] = {
    InvalidModelIdError: 400,
    ModelNotFoundError: 404,
    RegistryNotAuthorizedError: 401,
    RegistryPaymentRequiredError: 402,
    RegistryForbiddenError: 403,
    RegistryModelNotFoundError: 404,
    RegistryUsagePausedError: 423,
    RegistryUnsuccessfulRequestError: 502,
    MalformedRegistryResponseError: 502,
    RegistryConnectionError: 503,
    RegistryTimeoutError: 504,
    ModelCacheLockTimeout: 503,
    ModelArtifactError: 500,
    ExecutionProviderError: 501,
    DeadlineExceededError: 504,
    InvalidImageError: 400,
    ImageTooLargeError: 413,
    InputNotAllowedError: 400,
    ImageDownloadError: 400,
    RequestTooLargeError: 413,
    ApiKeyError: 401,
    WrongTaskError: 400,
    MalformedRequestError: 422,
    InferenceTimeoutError: 504,
}
"""Error class -> HTTP status of the inference server (and the client's reverse reading)."""
