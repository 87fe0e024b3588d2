"""framepipe's HTTP servers on FastAPI and uvicorn (the optional ``server`` extra:
``pip install 'framepipe[server]'``).

``create_app`` builds one FastAPI application from routers; today it holds the model registry
(``routes.registry``), and the inference server joins it as another router. ``RegistryServer``
runs the registry on uvicorn, on a background thread or in the foreground
(``framepipe registry serve``).

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
from framepipe.server.registry import RegistryServer, RequestRecord

__all__ = ["RegistryServer", "RequestRecord", "create_app"]
