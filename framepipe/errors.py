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
