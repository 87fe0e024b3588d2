"""Reading settings from the environment: one set of truth words, read when called (at a
pipeline's construction), never at import.

Example:
    >>> from framepipe._internal.env import env_flag, env_float, env_int
    >>> env_flag("CLASS_AGNOSTIC_NMS", False, {"CLASS_AGNOSTIC_NMS": "True"})
    True
    >>> env_int("VIDEO_SOURCE_BUFFER_SIZE", 2, {}), env_float("CONFIDENCE", 0.4, {"CONFIDENCE": "0.5"})
    (2, 0.5)
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["TRUE_WORDS", "env_flag", "env_float", "env_int"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def _value(name: str, env: Mapping[str, str] | None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    return value.strip() if value is not None and value.strip() else None


def env_flag(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    """``True`` for 1 / true / yes / on (any case), ``False`` for anything else; ``default`` when unset."""
    value = _value(name, env)
    return default if value is None else value.lower() in TRUE_WORDS


def env_float(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    """A number; a value that is not one is an error naming the variable."""
    value = _value(name, env)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not a number") from None


def env_int(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    """A whole number; a value that is not one is an error naming the variable."""
    value = _value(name, env)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not a whole number") from None
