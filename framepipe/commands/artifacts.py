"""The ``framepipe fetch``, ``framepipe cache`` and ``framepipe registry`` commands.

Example::

    framepipe fetch yolov8n-640 my-dataset/3 --api-key "$ROBOFLOW_API_KEY"
    framepipe cache list
    framepipe cache verify
    framepipe cache prune --max-size 2G
    framepipe cache doctor --fix
    framepipe registry add runs/best.onnx --id doorbell/2 --root registry
    framepipe registry serve --root registry --port 9001 --api-key team-secret
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from framepipe.artifacts.aliases import resolve_alias
from framepipe.artifacts.cache import CacheState, ModelCache, format_size, format_time, parse_size
from framepipe.artifacts.fetch import fetch_model
from framepipe.artifacts.model_id import parse_model_id
from framepipe.artifacts.resolve import bundled_folder
from framepipe.artifacts.settings import RegistrySettings
from framepipe.errors import FramepipeError, ModelCacheError

REGISTRY_KEYS_ENV = "FRAMEPIPE_REGISTRY_API_KEYS"


def _fetch(args: argparse.Namespace) -> int:
    settings = RegistrySettings.from_env()
    for model_id in args.model_ids:
        target = resolve_alias(model_id)
        if "/" in target and bundled_folder(parse_model_id(target)) is not None:
            print(f"{model_id}: bundled with framepipe, nothing to fetch")
            continue
        result = fetch_model(
            model_id, api_key=args.api_key, cache_dir=args.cache_dir, settings=settings, progress=not args.no_progress
        )
        entry = ModelCache(args.cache_dir).entry(parse_model_id(result.model_id))
        how = "downloaded" if result.downloaded else "already cached"
        print(f"{result.model_id}: {how}, {entry.state.value}, {format_size(entry.size)} in {result.folder}")
    return 0


def _cache_list(args: argparse.Namespace) -> int:
    cache = ModelCache(args.cache_dir)
    entries = cache.entries()
    if not entries:
        print(f"no models in {cache.root}")
        return 0
    rows = [("MODEL_ID", "SIZE", "LAST_USED", "VERIFIED")]
    for e in entries:
        if e.state is CacheState.COMPLETE:
            verified = f"yes ({e.verified_at})" if e.verified_at else "yes"
            if not e.registry_sha256:
                verified = f"unchanged since download ({e.verified_at}; the registry announced no sha256)"
        elif e.state is CacheState.FOREIGN:
            verified = "no manifest (written by another tool)"
        else:
            verified = f"{e.state.value.upper()}: {e.detail}"
        rows.append((e.model_id, format_size(e.size), format_time(e.last_used), verified))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))
    print(f"{len(entries)} model(s), {format_size(sum(e.size for e in entries))} in {cache.root}")
    return 0


def _cache_verify(args: argparse.Namespace) -> int:
    cache = ModelCache(args.cache_dir)
    refs = [parse_model_id(m) for m in args.model_ids] if args.model_ids else cache.model_refs()
    failures = 0
    for ref in refs:
        entry = cache.verify(ref)
        if entry.state is CacheState.COMPLETE:
            print(f"{ref.model_id}: ok (sha256 of every file matches its manifest)")
        elif entry.state is CacheState.FOREIGN:
            print(f"{ref.model_id}: no manifest (written by another tool); files present, hashes unknown")
        else:
            failures += 1
            print(f"{ref.model_id}: {entry.state.value.upper()}: {entry.detail}")
    if not refs:
        print(f"no models in {cache.root}")
    return 1 if failures else 0


def _cache_rm(args: argparse.Namespace) -> int:
    cache = ModelCache(args.cache_dir)
    for model_id in args.model_ids:
        print(f"removed {cache.remove(model_id)}")
    return 0


def _cache_prune(args: argparse.Namespace) -> int:
    cache = ModelCache(args.cache_dir)
    result = cache.prune(args.max_size)
    for entry in result.removed:
        print(f"removed {entry.model_id} ({format_size(entry.size)}, last used {format_time(entry.last_used)})")
    for entry in result.skipped_in_use:
        print(f"kept {entry.model_id}: it is being loaded")
    print(f"cache {cache.root}: {format_size(result.size_before)} -> {format_size(result.size_after)}")
    return 0


def _cache_doctor(args: argparse.Namespace) -> int:
    from framepipe.artifacts.doctor import diagnose, fix

    cache = ModelCache(args.cache_dir)
    findings = diagnose(cache)
    if not findings:
        print(f"no problems in {cache.root}")
        return 0
    if not args.fix:
        for finding in findings:
            print(finding)
        fixable = sum(f.repair is not None for f in findings)
        print(f"{len(findings)} problem(s) in {cache.root}; run `framepipe cache doctor --fix` to fix {fixable}")
        return 1
    fixed, left = fix(cache, findings)
    for finding in fixed:
        print(f"fixed {finding.path}: {finding.problem} ({finding.action})")
    for finding in left:
        reason = "in use right now; try again later" if finding.repair is not None else "fix it by hand"
        print(f"left {finding.path}: {finding.problem} ({reason})")
    return 1 if left else 0


def _registry_serve(args: argparse.Namespace) -> int:
    try:  # the server extra (FastAPI, uvicorn) is optional
        from framepipe.server.registry import RegistryServer
    except ImportError as error:
        raise FramepipeError(f"framepipe registry serve needs the server extra: {error}") from None

    keys = list(args.api_key or [])
    keys += [k.strip() for k in os.environ.get(REGISTRY_KEYS_ENV, "").split(",") if k.strip()]
    try:
        server = RegistryServer(args.root, host=args.host, port=args.port, api_keys=keys, public_url=args.public_url)
    except OSError as error:
        raise ModelCacheError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    note = f"{len(keys)} API key(s)" if keys else "no API key needed"
    print(f"serving {server.root} at {server.url} ({note}); clients: API_BASE_URL={server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _registry_add(args: argparse.Namespace) -> int:
    from framepipe.artifacts.registry_folder import add_model
    from framepipe.models.onnx_model import metadata_class_names
    from framepipe.models.session import onnx_metadata

    folder = add_model(
        args.root,
        args.source,
        args.id,
        task_type=args.task,
        model_type=args.model_type,
        overwrite=args.force,
        class_names_of=lambda weights: metadata_class_names(onnx_metadata(weights)) or [],
    )
    print(f"added {args.id} as {folder}")
    return 0


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_commands(commands: Any) -> None:
    """Register ``fetch``, ``cache`` and ``registry`` on the ``framepipe`` command's subparsers."""
    cache_help = "model cache folder (default: $MODEL_CACHE_DIR or ~/.cache/framepipe/models)"

    fetch = commands.add_parser(
        "fetch",
        help="download models into the cache ahead of time",
        description="Download models into the cache now (with progress), so that later runs need no network "
        "(FRAMEPIPE_OFFLINE=1). Reads API_BASE_URL, ROBOFLOW_API_KEY / API_KEY and DEVICE_ID.",
    )
    fetch.add_argument("model_ids", nargs="+", metavar="MODEL_ID", help="dataset/version or an alias")
    fetch.add_argument("--api-key", help="API key (default: $ROBOFLOW_API_KEY, then $API_KEY)")
    fetch.add_argument("--cache-dir", help=cache_help)
    fetch.add_argument("--no-progress", action="store_true", help="no progress bars")
    fetch.set_defaults(handler=_fetch)

    cache = commands.add_parser("cache", help="list, verify, remove, prune and check cached models")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    listing = cache_commands.add_parser("list", help="cached models: id, size, last used, verified")
    listing.add_argument("--cache-dir", help=cache_help)
    listing.set_defaults(handler=_cache_list)
    verify = cache_commands.add_parser(
        "verify", help="re-hash cached files against their manifests (exit status 1 when one is damaged)"
    )
    verify.add_argument("model_ids", nargs="*", metavar="MODEL_ID", help="models to check (default: all)")
    verify.add_argument("--cache-dir", help=cache_help)
    verify.set_defaults(handler=_cache_verify)
    remove = cache_commands.add_parser("rm", help="remove models from the cache")
    remove.add_argument("model_ids", nargs="+", metavar="MODEL_ID")
    remove.add_argument("--cache-dir", help=cache_help)
    remove.set_defaults(handler=_cache_rm)
    prune = cache_commands.add_parser(
        "prune", help="remove least recently used models until the cache fits a size (never one being loaded)"
    )
    prune.add_argument("--max-size", required=True, type=_size, help="e.g. 500M, 2G (K/M/G/T = 1024^n; KB/MB/GB)")
    prune.add_argument("--cache-dir", help=cache_help)
    prune.set_defaults(handler=_cache_prune)

    doctor = cache_commands.add_parser(
        "doctor",
        help="check a (shared) cache: symlinks, other users' folders, leftovers, damaged manifests",
        description="Check the cache folder for symlinks (in _file_locks and model folders), folders owned by "
        "another user that others may write to, leftovers of interrupted downloads and damaged manifests; say "
        "what --fix would do. Exit status 1 while problems remain.",
    )
    doctor.add_argument("--fix", action="store_true", help="fix what can be fixed (never a model in use)")
    doctor.add_argument("--cache-dir", help=cache_help)
    doctor.set_defaults(handler=_cache_doctor)

    registry = commands.add_parser("registry", help="serve models from a folder with Roboflow's download API")
    registry_commands = registry.add_subparsers(dest="registry_command", required=True)
    serve = registry_commands.add_parser(
        "serve",
        help="serve a folder laid out like the cache over HTTP (GET /ort/<dataset>/<version>)",
        description="Serve the models under --root with Roboflow's /ort download API, Range requests and the "
        "sha256 of each file. Point clients at it with API_BASE_URL=http://HOST:PORT. API keys may also come "
        f"from ${REGISTRY_KEYS_ENV} (comma-separated), which keeps them out of the process list.",
    )
    serve.add_argument("--root", required=True, help="folder holding <dataset>/<version>/ model folders")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9001, help="port (default 9001; 0 picks a free one)")
    serve.add_argument("--api-key", action="append", help="accept this API key (repeatable; none: no key needed)")
    serve.add_argument(
        "--public-url", help="base of the file URLs handed to clients (default http://HOST:PORT as bound)"
    )
    serve.set_defaults(handler=_registry_serve)
    add = registry_commands.add_parser("add", help="copy a model folder or .onnx file into a registry folder")
    add.add_argument("source", metavar="DIR_OR_ONNX")
    add.add_argument("--id", required=True, help="dataset/version to serve it as")
    add.add_argument("--root", required=True, help="registry folder")
    add.add_argument("--task", help="project task type (default: the source's, else object-detection)")
    add.add_argument("--model-type", help="model type, e.g. yolov8n (default: the source's, else yolov8n)")
    add.add_argument("--force", action="store_true", help="replace a model already there")
    add.set_defaults(handler=_registry_add)
