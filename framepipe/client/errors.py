"""Errors of the HTTP client, with ``inference_sdk``'s names so that ``except`` clauses written for
it keep working; each also derives from ``framepipe.errors.FramepipeError``.

Example:
    >>> from framepipe.client.errors import HTTPCallErrorError, HTTPClientError
    >>> error = HTTPCallErrorError("POST /infer/object_detection", status_code=404, api_message="no such model")
    >>> isinstance(error, HTTPClientError), error.status_code
    (True, 404)
    >>> str(error)
    'HTTPCallErrorError(description=POST /infer/object_detection, api_message=no such model, status_code=404)'
"""

from __future__ import annotations

from framepipe.errors import FramepipeError


class HTTPClientError(FramepipeError):
    """Base class of every error the client raises."""


class HTTPCallErrorError(HTTPClientError):
    """The server answered an error status (after the retries, for 429/503/504)."""

    def __init__(self, description: str, status_code: int, api_message: str | None) -> None:
        super().__init__(description)
        self.description = description
        self.status_code = status_code
        self.api_message = api_message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(description={self.description}, api_message={self.api_message}, "
            f"status_code={self.status_code})"
        )

    def __str__(self) -> str:
        return self.__repr__()


class HTTPServerConnectionError(HTTPClientError):
    """The server could not be reached (refused, reset, timed out), after the retries."""


class InvalidInputFormatError(HTTPClientError):
    """An input that is neither a path, a URL, base64, a numpy image nor a PIL image."""


class InvalidModelIdentifier(HTTPClientError):
    """A model id that is not ``project/version`` where API v0 needs one."""


class ModelNotInitializedError(HTTPClientError):
    """The server has not loaded the model and was not allowed to (or could not)."""


class ModelTaskTypeNotSupportedError(HTTPClientError):
    """The model's task has no ``/infer/...`` route in API v1."""


class ModelNotSelectedError(HTTPClientError):
    """``infer`` got no ``model_id`` and no model was selected (``select_model`` / ``use_model``)."""


class APIKeyNotProvided(HTTPClientError):
    """API v0 needs an API key and the client has none."""


class EncodingError(HTTPClientError):
    """An image could not be read, decoded or encoded."""


class WrongClientModeError(HTTPClientError):
    """An operation of API v1 (the model registry routes) called in API v0 mode."""


class InvalidParameterError(HTTPClientError):
    """A configuration value out of its range."""
