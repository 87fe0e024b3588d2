"""``framepipe serve``: Roboflow's inference server API (``/infer/*``, ``/model/*``, the legacy
``/{dataset_id}/{version_id}``, ``/info``, ``/healthz``, ``/readiness``, ``/metrics``) on uvicorn, and
with ``--registry-root DIR`` the model registry (``/ort``, ``/files``) in the same process.

Settings come from the environment as in Roboflow (``MAX_ACTIVE_MODELS``, ``PINNED_MODELS``,
``PRELOAD_MODELS``, ``ALLOW_URL_INPUT``, ``ALLOW_NON_HTTPS_URL_INPUT``, ``DISK_CACHE_CLEANUP``, ...;
see ``framepipe.server.settings``). ``--api-key`` (or ``$FRAMEPIPE_SERVER_API_KEYS``, which keeps keys
out of the process list) makes every route but ``/healthz`` need a key.

Example::

    framepipe serve --host 0.0.0.0 --port 9001
    FRAMEPIPE_SERVER_API_KEYS=team-secret framepipe serve --registry-root /srv/models
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
from typing import Any

from framepipe.errors import FramepipeError


def add_command(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve models over HTTP with Roboflow's inference server API",
        description="Serve Roboflow's inference server API (/infer/*, /model/*, /{dataset_id}/{version_id}, /info, "
        "/healthz, /readiness, /metrics). Clients: inference_sdk.InferenceHTTPClient(api_url='http://HOST:PORT') "
        "or framepipe.client.InferenceHTTPClient.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9001, help="port (default 9001; 0 picks a free one)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1; each loads its models)")
    serve.add_argument(
        "--api-key", action="append", help="require this API key (repeatable; also $FRAMEPIPE_SERVER_API_KEYS)"
    )
    serve.add_argument("--registry-root", help="also serve the models under DIR with Roboflow's /ort download API")
    serve.add_argument("--public-url", help="base of the registry's file URLs (default http://HOST:PORT as bound)")
    serve.set_defaults(handler=execute)


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(env: dict[str, str] | None = None) -> int | None:
    """Cap glibc's malloc arenas at the number of cores (at least 2) unless ``MALLOC_ARENA_MAX`` is set.

    glibc gives each busy thread an arena of its own, up to 8 per core; a server's worker threads
    then spread freed image buffers over dozens of arenas and resident memory creeps up under load
    (measured: +6 % over 10 s with 16 clients, +2 % with the cap). Returns the cap set, or ``None``.

    >>> limit_malloc_arenas({"MALLOC_ARENA_MAX": "8"}) is None
    True
    """
    env = dict(os.environ) if env is None else env
    if "MALLOC_ARENA_MAX" in env or not sys.platform.startswith("linux"):
        return None
    count = max(2, os.cpu_count() or 2)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return count if libc.mallopt(M_ARENA_MAX, count) == 1 else None


def execute(args: argparse.Namespace) -> int:
    try:  # the server extra (FastAPI, uvicorn) is optional
        from framepipe.server import InferenceServer, ServerSettings
        from framepipe.server.settings import API_KEYS_ENV
    except ImportError as error:
        raise FramepipeError(f"framepipe serve needs the server extra: {error}") from None
    if args.workers < 1:
        raise FramepipeError(f"--workers must be at least 1, got {args.workers}")
    try:
        settings = ServerSettings.from_env().with_keys(args.api_key or [])
    except ValueError as error:
        raise FramepipeError(str(error)) from None
    if args.registry_root is not None and not os.path.isdir(args.registry_root):
        raise FramepipeError(f"--registry-root {args.registry_root!r} is not a folder")
    note = f"{len(settings.api_keys)} API key(s)" if settings.api_keys else "no API key needed"
    limit_malloc_arenas()  # before the worker threads exist
    if args.workers > 1:
        return _serve_workers(args, settings, API_KEYS_ENV, note)
    try:
        server = InferenceServer(
            args.host, args.port, settings, registry_root=args.registry_root, public_url=args.public_url
        )
    except OSError as error:
        raise FramepipeError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    registry = f"; registry of {args.registry_root} at /ort" if args.registry_root else ""
    print(f"framepipe inference server at {server.url} ({note}{registry})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _serve_workers(args: argparse.Namespace, settings: Any, keys_env: str, note: str) -> int:
    import uvicorn

    from framepipe.server.inference_server import PUBLIC_URL_ENV, REGISTRY_ROOT_ENV

    os.environ[keys_env] = ",".join(settings.api_keys)  # the workers read their settings from here
    os.environ.setdefault("MALLOC_ARENA_MAX", str(max(2, os.cpu_count() or 2)))  # glibc reads it in each worker
    if args.registry_root:
        os.environ[REGISTRY_ROOT_ENV] = os.path.abspath(args.registry_root)
        os.environ[PUBLIC_URL_ENV] = args.public_url or f"http://{args.host}:{args.port}"
    print(f"framepipe inference server at http://{args.host}:{args.port} ({note}; {args.workers} workers)", flush=True)
    uvicorn.run(
        "framepipe.server.inference_server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0
