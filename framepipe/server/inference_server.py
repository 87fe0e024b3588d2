"""``InferenceServer``: the inference server (and, with ``registry_root``, the model registry in the same
app) on uvicorn, as ``framepipe serve`` runs it and as tests start it on 127.0.0.1.

Example:
    >>> from framepipe.server import InferenceServer
    >>> with InferenceServer(port=0) as server:  # doctest: +SKIP
    ...     print(server.url)  # the api_url of InferenceHTTPClient
    http://127.0.0.1:43121
"""

from __future__ import annotations

import os
from typing import Any

from framepipe.server.app import create_app
from framepipe.server.model_service import ModelService
from framepipe.server.routes.registry import RegistryService
from framepipe.server.runner import ServerThread
from framepipe.server.service import InferenceService
from framepipe.server.settings import ServerSettings


class InferenceServer:
    """Roboflow's inference server routes on uvicorn at ``host:port`` (``port=0``: a free one).

    ``settings`` default to the environment (``ServerSettings.from_env``); ``models`` to a
    ``ModelService`` on the process's model manager (the one ``get_model`` and pipelines use).
    ``registry_root`` also serves the registry routes (``/ort``, ``/files``) of that folder, with the
    server's API keys.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9001,
        settings: ServerSettings | None = None,
        *,
        models: ModelService | None = None,
        registry_root: str | os.PathLike[str] | None = None,
        public_url: str | None = None,
        request_timeout_s: float = 30.0,
        workers: int | None = None,
    ) -> None:
        self.settings = settings or ServerSettings.from_env()
        self.service = InferenceService(self.settings, models, workers=workers)
        self.registry = RegistryService(registry_root, self.settings.api_keys) if registry_root is not None else None
        self.app: Any = create_app(inference=self.service, registry=self.registry)
        self.thread = ServerThread(
            self.app, host, port, request_timeout_s=request_timeout_s, name="framepipe-inference", lifespan="on"
        )
        if self.registry is not None:
            self.registry.public_url = (public_url or self.thread.url).rstrip("/")

    def __repr__(self) -> str:
        return f"InferenceServer(url={self.url!r}, keys={len(self.settings.api_keys)})"

    @property
    def url(self) -> str:
        return self.thread.url

    @property
    def models(self) -> ModelService:
        return self.service.models

    def start(self) -> InferenceServer:
        """Serve on a background thread; returns ``self`` once connections are accepted."""
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until ``stop``, Ctrl-C or SIGTERM."""
        self.thread.serve_forever()

    def stop(self) -> None:
        """Stop serving, close the socket, stop the worker threads (idempotent)."""
        self.thread.stop()
        self.service.stop()

    def __enter__(self) -> InferenceServer:
        return self if self.thread.server.started else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


REGISTRY_ROOT_ENV = "FRAMEPIPE_SERVER_REGISTRY_ROOT"
PUBLIC_URL_ENV = "FRAMEPIPE_SERVER_PUBLIC_URL"


def app_from_env() -> Any:
    """The app one worker of ``framepipe serve --workers N`` runs: settings from the environment, the
    registry of ``$FRAMEPIPE_SERVER_REGISTRY_ROOT`` when set (uvicorn's factory, one per process)."""
    settings = ServerSettings.from_env()
    root = os.environ.get(REGISTRY_ROOT_ENV)
    registry = RegistryService(root, settings.api_keys, public_url=os.environ.get(PUBLIC_URL_ENV, "")) if root else None
    return create_app(inference=InferenceService(settings), registry=registry)
