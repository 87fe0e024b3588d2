"""The inference server's settings: Roboflow's environment variables where Roboflow has one, framepipe's
own (``FRAMEPIPE_SERVER_*``) for the limits Roboflow does not set, read once when the server is built.

| setting | variable | default |
|---|---|---|
| ``api_keys`` | ``FRAMEPIPE_SERVER_API_KEYS`` (comma list) | none: no key needed |
| ``max_active_models`` | ``MAX_ACTIVE_MODELS`` | 8 |
| ``pinned_models`` / ``preload_models`` | ``PINNED_MODELS`` / ``PRELOAD_MODELS`` (comma lists) | none |
| ``disk_cache_cleanup`` | ``DISK_CACHE_CLEANUP`` | False (Roboflow: True) |
| ``allow_url_input`` | ``ALLOW_URL_INPUT`` | True |
| ``allow_non_https_url_input`` | ``ALLOW_NON_HTTPS_URL_INPUT`` | False |
| ``url_max_bytes`` | ``FRAMEPIPE_SERVER_URL_MAX_BYTES`` | 20 MiB |
| ``url_timeout_s`` | ``FRAMEPIPE_SERVER_URL_TIMEOUT`` | 5 s |
| ``max_body_bytes`` | ``FRAMEPIPE_SERVER_MAX_BODY_BYTES`` | 64 MiB |
| ``max_image_pixels`` | ``FRAMEPIPE_SERVER_MAX_IMAGE_PIXELS`` | 40 M (e.g. 8000 x 5000) |
| ``request_timeout_s`` | ``FRAMEPIPE_SERVER_REQUEST_TIMEOUT`` | 30 s |
| ``legacy_route_enabled`` | ``LEGACY_ROUTE_ENABLED`` | True |

Example:
    >>> from framepipe.server.settings import ServerSettings
    >>> settings = ServerSettings.from_env({"PINNED_MODELS": "a/1, b/2", "ALLOW_URL_INPUT": "false"})
    >>> settings.pinned_models, settings.allow_url_input, settings.max_active_models
    (('a/1', 'b/2'), False, 8)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from framepipe._internal.env import env_flag, env_float, env_int

API_KEYS_ENV = "FRAMEPIPE_SERVER_API_KEYS"


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


@dataclass(frozen=True)
class ServerSettings:
    """What an inference server allows and keeps (see the module docstring for each variable)."""

    api_keys: tuple[str, ...] = field(default=(), repr=False)
    max_active_models: int = 8
    pinned_models: tuple[str, ...] = ()
    preload_models: tuple[str, ...] = ()
    disk_cache_cleanup: bool = False
    allow_url_input: bool = True
    allow_non_https_url_input: bool = False
    url_max_bytes: int = 20 * 1024 * 1024
    url_timeout_s: float = 5.0
    max_body_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    request_timeout_s: float = 30.0
    legacy_route_enabled: bool = True
    preload_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_active_models < 1:
            raise ValueError(f"MAX_ACTIVE_MODELS must be at least 1, got {self.max_active_models}")
        for name in ("url_max_bytes", "max_body_bytes", "max_image_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.request_timeout_s <= 0 or self.url_timeout_s <= 0:
            raise ValueError("timeouts must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """Settings from ``env`` (default ``os.environ``); ``overrides`` that are not ``None`` win."""
        env = os.environ if env is None else env
        base = cls()
        values: dict[str, Any] = {
            "api_keys": _names(env.get(API_KEYS_ENV)),
            "max_active_models": env_int("MAX_ACTIVE_MODELS", base.max_active_models, env),
            "pinned_models": _names(env.get("PINNED_MODELS")),
            "preload_models": _names(env.get("PRELOAD_MODELS")),
            "disk_cache_cleanup": env_flag("DISK_CACHE_CLEANUP", base.disk_cache_cleanup, env),
            "allow_url_input": env_flag("ALLOW_URL_INPUT", base.allow_url_input, env),
            "allow_non_https_url_input": env_flag("ALLOW_NON_HTTPS_URL_INPUT", base.allow_non_https_url_input, env),
            "url_max_bytes": env_int("FRAMEPIPE_SERVER_URL_MAX_BYTES", base.url_max_bytes, env),
            "url_timeout_s": env_float("FRAMEPIPE_SERVER_URL_TIMEOUT", base.url_timeout_s, env),
            "max_body_bytes": env_int("FRAMEPIPE_SERVER_MAX_BODY_BYTES", base.max_body_bytes, env),
            "max_image_pixels": env_int("FRAMEPIPE_SERVER_MAX_IMAGE_PIXELS", base.max_image_pixels, env),
            "request_timeout_s": env_float("FRAMEPIPE_SERVER_REQUEST_TIMEOUT", base.request_timeout_s, env),
            "legacy_route_enabled": env_flag("LEGACY_ROUTE_ENABLED", base.legacy_route_enabled, env),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("api_keys", "pinned_models", "preload_models"):
            if isinstance(values[name], str):
                values[name] = _names(values[name])
            values[name] = tuple(values[name])
        return cls(**values)

    def with_keys(self, keys: Iterable[str]) -> ServerSettings:
        """These settings with ``keys`` added to the accepted API keys."""
        return replace(self, api_keys=tuple(dict.fromkeys([*self.api_keys, *(k for k in keys if k)])))
