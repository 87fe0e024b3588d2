"""framepipe's HTTP servers on FastAPI and uvicorn (the optional ``server`` extra:
``pip install 'framepipe[server]'``).

``create_app`` builds one FastAPI application from routers: the inference server (Roboflow's
``/infer``, ``/model`` and legacy routes, ``InferenceService``) and the model registry
(``routes.registry``), alone or together. ``InferenceServer`` runs it on uvicorn (``framepipe
serve``); ``RegistryServer`` runs the registry alone (``framepipe registry serve``).

Example:
    >>> from framepipe.server import RegistryServer
    >>> with RegistryServer("registry", port=0, api_keys=["secret"]) as server:  # doctest: +SKIP
    ...     print(server.url)  # API_BASE_URL for clients
    http://127.0.0.1:43121
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"framepipe's servers need FastAPI and uvicorn ({error.name} is missing): pip install 'framepipe[server]'"
    ) from None

from framepipe.server.app import create_app
from framepipe.server.inference_server import InferenceServer
from framepipe.server.registry import RegistryServer, RequestRecord
from framepipe.server.service import InferenceService
from framepipe.server.settings import ServerSettings

__all__ = ["InferenceServer", "InferenceService", "RegistryServer", "RequestRecord", "ServerSettings", "create_app"]
