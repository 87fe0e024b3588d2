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


# -- models ---------------------------------------------------------------------------------------
class ModelLoadError(ModelArtifactError):
    """ONNX Runtime could not load the weights (truncated or corrupt file, unsupported opset)."""


class UnsupportedModelOutputError(ModelArtifactError):
    """No decoder knows the model's output layout."""


class ExecutionProviderError(FramepipeError):
    """An execution provider that was asked for explicitly cannot run here."""


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
