"""Request bodies to pydantic models, with errors that name the fields and never echo their values
(a body may hold an API key or megabytes of base64).

Example:
    >>> from framepipe.server.schemas import ModelRequest
    >>> from framepipe.server.validation import parse_body
    >>> parse_body(ModelRequest, b'{"model_id": "a/1"}').model_id
    'a/1'
    >>> parse_body(ModelRequest, b'{"model_id": 3}')
    Traceback (most recent call last):
    ...
    framepipe.errors.MalformedRequestError: malformed request: model_id: Input should be a valid string
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from framepipe.errors import MalformedRequestError

B = TypeVar("B", bound=BaseModel)


def parse_body(model: type[B], raw: bytes) -> B:
    """``raw`` (JSON) validated as ``model``; ``MalformedRequestError`` naming each bad field."""
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        raise MalformedRequestError("malformed request: the body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedRequestError("malformed request: the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors(include_input=False, include_url=False)[:5]:
            where = ".".join(str(part) for part in item.get("loc", ())) or "body"
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        raise MalformedRequestError("malformed request: " + "; ".join(problems)) from None
