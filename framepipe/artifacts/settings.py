"""Where models come from and how hard to try: the registry URL, the API key, offline mode, lock
timeout, retries and timeouts, read from the environment (Roboflow's variable names where it has
them).

Example:
    >>> from framepipe.artifacts.settings import RegistrySettings
    >>> settings = RegistrySettings.from_env({"ROBOFLOW_API_KEY": "sk-9f2c", "FRAMEPIPE_OFFLINE": "1"})
    >>> settings.offline, settings.api_base_url
    (True, 'https://api.roboflow.com')
    >>> "sk-9f2c" in repr(settings)
    False
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

DEFAULT_API_BASE_URL = "https://api.roboflow.com"
DEFAULT_LOCK_TIMEOUT_S = 120.0
"""Roboflow's download lock timeout; framepipe counts it from the last sign of progress."""

_TRUE = {"1", "true", "yes", "on", "t", "y"}


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None
    if value < 0:
        raise ValueError(f"environment variable {name}={raw!r} must not be negative")
    return value


def api_key_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """``ROBOFLOW_API_KEY``, else ``API_KEY`` (Roboflow's order), else ``None``."""
    env = os.environ if env is None else env
    return env.get("ROBOFLOW_API_KEY") or env.get("API_KEY") or None


def offline_from_env(env: Mapping[str, str] | None = None) -> bool:
    """True when ``FRAMEPIPE_OFFLINE`` or Roboflow's ``OFFLINE_MODE`` is set to a true value."""
    env = os.environ if env is None else env
    return _flag(env.get("FRAMEPIPE_OFFLINE")) or _flag(env.get("OFFLINE_MODE"))


@dataclass(frozen=True)
class RegistrySettings:
    """How framepipe reaches a model registry. ``api_key`` never appears in ``repr``.

    - ``api_base_url``: ``API_BASE_URL`` (default ``https://api.roboflow.com``), plus Roboflow's
      ``INTERNAL_WEIGHTS_URL_SUFFIX``; ``api_base_url_is_default`` says whether it was set.
    - ``api_key``: ``ROBOFLOW_API_KEY``, then ``API_KEY``.
    - ``device_id``: ``DEVICE_ID``, else the host name (sent as ``device=`` as Roboflow does).
    - ``offline``: ``FRAMEPIPE_OFFLINE=1`` or ``OFFLINE_MODE=True``: never touch the network.
    - ``lock_timeout_s``: ``FRAMEPIPE_LOCK_TIMEOUT`` (default 120 s, Roboflow's), counted from the
      last progress of the process that holds the lock.
    - ``retries``: ``FRAMEPIPE_DOWNLOAD_RETRIES`` (default 3): extra attempts after a 5xx, a
      timeout or a broken connection; ``backoff_s``: ``FRAMEPIPE_RETRY_BACKOFF`` (default 0.5 s),
      the first wait, doubled each time (at most 8 s), with full jitter.
    - ``read_timeout_s``: ``FRAMEPIPE_DOWNLOAD_TIMEOUT`` (default 30 s without a byte);
      ``connect_timeout_s``: 10 s.
    """

    api_base_url: str = DEFAULT_API_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    device_id: str = field(default_factory=lambda: platform.node() or "framepipe")
    offline: bool = False
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    retries: int = 3
    backoff_s: float = 0.5
    read_timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    api_base_url_is_default: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RegistrySettings:
        """Read the settings from ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        base = (env.get("API_BASE_URL") or "").strip()
        suffix = (env.get("INTERNAL_WEIGHTS_URL_SUFFIX") or "").strip()
        return cls(
            api_base_url=(base or DEFAULT_API_BASE_URL).rstrip("/") + suffix.rstrip("/"),
            api_key=api_key_from_env(env),
            device_id=(env.get("DEVICE_ID") or "").strip() or platform.node() or "framepipe",
            offline=offline_from_env(env),
            lock_timeout_s=_number(env, "FRAMEPIPE_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT_S),
            retries=int(_number(env, "FRAMEPIPE_DOWNLOAD_RETRIES", 3)),
            backoff_s=_number(env, "FRAMEPIPE_RETRY_BACKOFF", 0.5),
            read_timeout_s=_number(env, "FRAMEPIPE_DOWNLOAD_TIMEOUT", 30.0) or 30.0,
            api_base_url_is_default=not base and not suffix,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Everything that must never appear in a message or a log: the API key and any
        ``user:password`` in ``api_base_url``."""
        from framepipe.artifacts.urls import url_secrets

        return tuple(s for s in (self.api_key or "", *url_secrets(self.api_base_url)) if s)

    def with_api_key(self, api_key: str | None) -> RegistrySettings:
        """These settings with ``api_key`` when one is given (an explicit key beats the environment)."""
        return replace(self, api_key=api_key) if api_key else self
