"""Errors of the inference server as Roboflow answers them: a status from ``framepipe.errors.HTTP_STATUS``
and the body ``{"message": ..., "error_type": ...}`` (Roboflow's ``{"message"}``, with framepipe's error
class added). Messages name no server path and never hold a key: errors the client caused carry their
own (checked) message, the others a fixed sentence; the traceback goes to the server's log only.

Example:
    >>> from framepipe.errors import InvalidImageError
    >>> from framepipe.server.errors import describe_error
    >>> describe_error(InvalidImageError("the image is empty"))
    (400, {'message': 'Could not load input image. Cause: the image is empty', 'error_type': 'InvalidImageError'})
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi.responses import JSONResponse

from framepipe._internal.redact import redact_text
from framepipe.errors import (
    ImageDownloadError,
    ImageTooLargeError,
    InputNotAllowedError,
    InvalidImageError,
    InvalidModelIdError,
    ModelArtifactError,
    ModelCacheLockTimeout,
    ModelDownloadError,
    ModelNotFoundError,
    RegistryConnectionError,
    RegistryForbiddenError,
    RegistryNotAuthorizedError,
    RegistryTimeoutError,
    ServerRequestError,
    http_status,
)
from framepipe.models.params import InvalidParameterError

logger = logging.getLogger("framepipe.server")

_FIXED: list[tuple[type[BaseException], str]] = [
    (InvalidModelIdError, "Invalid Model ID sent in request: a model id is 'dataset_id/version_id'."),
    (
        ModelNotFoundError,
        "Requested model not found. Make sure that the model id you referred in the request exists "
        "(and that the API key may read it).",
    ),
    (RegistryNotAuthorizedError, "Unauthorized access to the model registry: check the API key."),
    (RegistryForbiddenError, "The API key has no access to this model in the model registry."),
    (RegistryTimeoutError, "Timeout when attempting to connect to the model registry."),
    (RegistryConnectionError, "Internal error. Could not connect to the model registry."),
    (ModelDownloadError, "Internal error. Request to the model registry failed."),
    (ModelCacheLockTimeout, "The model is being downloaded by another request or process; retry the request."),
    (ModelArtifactError, "Model package is broken."),
]


def describe_error(error: BaseException, secrets: tuple[str, ...] = ()) -> tuple[int, dict[str, Any]]:
    """The status and Roboflow-shaped body for ``error``."""
    status = http_status(error)
    kind = type(error).__name__
    if isinstance(error, (InvalidImageError, ImageDownloadError, ImageTooLargeError, InputNotAllowedError)):
        message = f"Could not load input image. Cause: {error}"
    elif isinstance(error, ServerRequestError):
        message = str(error)
    elif isinstance(error, InvalidParameterError):
        status, message = 400, f"Invalid inference parameter: {error}"
    else:
        message = next((text for cls, text in _FIXED if isinstance(error, cls)), "Internal error.")
    if status == 404 and isinstance(error, ModelNotFoundError) and not isinstance(error, ServerRequestError):
        kind = "ModelNotFoundError"
    return status, {"message": redact_text(message, secrets)[:2000], "error_type": kind}


def error_json(error: BaseException, secrets: tuple[str, ...] = ()) -> JSONResponse:
    """``describe_error`` as a response; errors the server caused are logged with their traceback."""
    status, body = describe_error(error, secrets)
    headers = {"Retry-After": "1"} if status == 503 else None
    if status >= 500:
        known = http_status(error) != 500 or isinstance(error, ModelArtifactError)
        text = str(error) if known else "".join(traceback.format_exception(type(error), error, error.__traceback__))
        logger.error("%s answered %d: %s", type(error).__name__, status, redact_text(text, secrets))
    return JSONResponse(body, status_code=status, headers=headers)


def message_json(status: int, message: str, error_type: str) -> JSONResponse:
    """A Roboflow-shaped error body from a fixed message."""
    return JSONResponse({"message": message, "error_type": error_type}, status_code=status)
