"""Getting a ``dataset/version`` model into the cache: once, whole and verified, however many
threads and processes ask at the same time.

Under the model's lock (``locking.model_lock``) the caller inspects the folder: a complete model is
returned at once (sizes checked against the manifest); otherwise, unless offline, it asks the
registry (``/ort``), downloads each file to a temporary name (``.<name>.part``, resumed after a
break), checks them, writes the generated files, renames everything into place and writes the
manifest last. A journal marks the download as under way, so that a killed download is finished
(re-hashing what is there) by the next load rather than trusted.

Example:
    >>> from framepipe.artifacts.fetch import fetch_model
    >>> folder = fetch_model("my-dataset/3", api_key="...")  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
    ['.framepipe.json', 'class_names.txt', 'environment.json', 'model_type.json', 'weights.onnx']
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framepipe.artifacts.aliases import is_roboflow_alias, resolve_alias
from framepipe.artifacts.atomic import fsync_dir, sha256_file, write_synced
from framepipe.artifacts.cache import CacheState, Inspection, ModelCache, inspect_folder
from framepipe.artifacts.folder import check_environment, parse_json, write_class_names
from framepipe.artifacts.layout import (
    CLASS_NAMES_FILE,
    ENVIRONMENT_FILE,
    KEYPOINTS_FILE,
    MODEL_FILES,
    MODEL_TYPE_FILE,
    WEIGHTS_FILE_NAMES,
    part_path,
)
from framepipe.artifacts.locking import lock_path, model_lock, touch
from framepipe.artifacts.manifest import (
    JOURNAL_NAME,
    MANIFEST_NAME,
    FileRecord,
    Journal,
    Manifest,
    read_journal,
    write_journal,
    write_manifest,
)
from framepipe.artifacts.model_id import ModelRef, parse_model_id, safe_file_name
from framepipe.artifacts.onnx_check import onnx_problem
from framepipe.artifacts.safe_files import open_read, resumable, warn_if_shared
from framepipe.artifacts.settings import RegistrySettings
from framepipe.artifacts.urls import public_url, stored_url

if TYPE_CHECKING:  # the network modules (requests, urllib3, ssl) are loaded only to download
    import requests

    from framepipe.artifacts.download import Downloaded
    from framepipe.artifacts.roboflow_api import OrtModel, RemoteFile

from framepipe.errors import (
    MalformedRegistryResponseError,
    ModelArtifactError,
    ModelCacheError,
    ModelCacheLockTimeout,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelOfflineError,
)

logger = logging.getLogger("framepipe.artifacts")

ProgressFactory = Callable[[str, "int | None"], Any]
"""``factory(description, total)`` returns a context manager yielding ``update(done, total)``;
``fetch_model(progress=True)`` uses tqdm bars."""


@dataclass(frozen=True)
class FetchResult:
    """Where a model is, and what it took to get it there."""

    model_id: str
    folder: Path
    state: CacheState
    downloaded: bool
    """True when this call downloaded (or finished downloading) the model."""


def _offline_message(ref: ModelRef, inspection: Inspection, cache: ModelCache) -> str:
    where = inspection.folder
    if inspection.state is CacheState.INTERRUPTED:
        return (
            f"model {ref.model_id!r}: the download into {where} was interrupted and offline mode (FRAMEPIPE_OFFLINE / "
            f"OFFLINE_MODE) forbids finishing it; connect and run `framepipe fetch {ref.model_id}`"
        )
    if inspection.state is CacheState.CORRUPT:
        return (
            f"model {ref.model_id!r} in {where} is damaged ({inspection.detail}) and offline mode forbids downloading "
            f"it again; connect and run `framepipe fetch {ref.model_id}`, or copy a good cache to {cache.root}"
        )
    return (
        f"model {ref.model_id!r} is not in the model cache: looked in {where} (cache folder {cache.root}; set "
        f"MODEL_CACHE_DIR to use another); offline mode (FRAMEPIPE_OFFLINE / OFFLINE_MODE) forbids downloading it. "
        f"Run `framepipe fetch {ref.model_id}` while online first"
    )


def _may_use_network(settings: RegistrySettings, requested_id: str) -> bool:
    """Roboflow's API serves nothing but its public aliased models without a key: with no key and no
    registry of one's own (``API_BASE_URL``), framepipe does not make a request bound to fail."""
    return bool(settings.api_key) or not settings.api_base_url_is_default or is_roboflow_alias(requested_id)


def fetch_model(
    model_id: str | ModelRef,
    api_key: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    settings: RegistrySettings | None = None,
    progress: bool | ProgressFactory = False,
) -> FetchResult:
    """Make sure ``model_id`` (``dataset/version`` or an alias) is whole in the cache; download it if
    needed. Safe to call from many threads and processes at once: one downloads, the rest wait
    for it (``FRAMEPIPE_LOCK_TIMEOUT``, default 120 s without progress) and then use its files.

    Raises ``ModelOfflineError`` when offline and the model is not complete in the cache,
    ``ModelNotFoundError`` when there is nowhere to download it from, the ``Registry*Error``
    family for registry answers (401, 403, 404, ...) and ``ModelIntegrityError`` for files that
    disagree with what the registry announced.
    """
    requested = model_id.model_id if isinstance(model_id, ModelRef) else model_id
    ref = model_id if isinstance(model_id, ModelRef) else parse_model_id(resolve_alias(model_id))
    settings = (settings or RegistrySettings.from_env()).with_api_key(api_key)
    cache = ModelCache(cache_dir, settings.lock_timeout_s)
    folder = cache.folder(ref)
    factory = _tqdm_factory if progress is True else (progress or None)

    warn_if_shared(cache.root)
    with ExitStack() as stack:
        try:
            lock_file = stack.enter_context(model_lock(cache.root, ref, settings.lock_timeout_s, folder))
        except (ModelCacheLockTimeout, ModelCacheError):
            raise  # an OSError too, but not a read-only cache: a timeout, a refused symlink
        except OSError as error:
            # A read-only cache (a baked-in or mounted copy) cannot hold locks; nothing can download
            # into it either, so a complete model is read without one.
            inspection = inspect_folder(folder)
            if inspection.state.usable:
                logger.debug("%s: cannot lock (%s); reading the complete model as it is", ref.model_id, error)
                return FetchResult(ref.model_id, folder, inspection.state, False)
            raise ModelCacheError(
                f"cannot create the download lock {lock_path(cache.root, ref)} ({error.strerror or error}) and "
                f"model {ref.model_id!r} is not complete in {folder}: check that the cache folder {cache.root} is "
                "writable, or set MODEL_CACHE_DIR to one that is"
            ) from None
        result = _fetch_locked(ref, requested, folder, cache, settings, factory)
        touch(lock_file)
        return result
    raise AssertionError("unreachable")


def _fetch_locked(
    ref: ModelRef,
    requested: str,
    folder: Path,
    cache: ModelCache,
    settings: RegistrySettings,
    factory: ProgressFactory | None,
) -> FetchResult:
    inspection = inspect_folder(folder)
    if inspection.state.usable:
        return FetchResult(ref.model_id, folder, inspection.state, False)
    if inspection.state is CacheState.INTERRUPTED and _finish_commit(folder, ref):
        return FetchResult(ref.model_id, folder, CacheState.COMPLETE, True)
    if settings.offline:
        raise ModelOfflineError(_offline_message(ref, inspection, cache))
    if not _may_use_network(settings, requested):
        problem = "is not in the model cache" if inspection.state is CacheState.MISSING else "is damaged in the cache"
        raise ModelNotFoundError(
            f"model {ref.model_id!r} {problem} ({inspection.detail}) and there is no API key to download it with: "
            "pass api_key=, set ROBOFLOW_API_KEY, or set API_BASE_URL to your own registry (framepipe registry "
            "serve); or set MODEL_CACHE_DIR to the cache that holds it"
        )
    if inspection.state is CacheState.CORRUPT:
        logger.warning("%s: %s; downloading it again", ref.model_id, inspection.detail)
        _clear(folder)
    _download(ref, folder, settings, factory)
    return FetchResult(ref.model_id, folder, CacheState.COMPLETE, True)


def _clear(folder: Path) -> None:
    """Remove framepipe's record and every model file of a damaged folder (nothing else)."""
    for name in (MANIFEST_NAME, JOURNAL_NAME, *MODEL_FILES):
        for path in (folder / name, part_path(folder / name)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)  # a folder where a file belongs
            else:
                path.unlink(missing_ok=True)


def _finish_commit(folder: Path, ref: ModelRef) -> bool:
    """After a download was killed between its last byte and its manifest: re-hash what is there
    against the journal and finish the renames (no network needed). False when that cannot be."""
    journal = read_journal(folder)
    if journal is None or journal.phase != "commit" or not journal.files:
        return False
    records: dict[str, FileRecord] = {}
    for name, entry in journal.files.items():
        final, part = folder / name, part_path(folder / name)
        expected = str(entry.get("sha256", ""))
        size = entry.get("size")
        if type(size) is not int or size < 0 or not expected:
            logger.info("%s: the journal of an interrupted download is incomplete; downloading again", ref.model_id)
            return False
        # only files this user's own download left (regular, one link, owned): never a planted link
        if resumable(part) and sha256_file(part) == expected:
            os.replace(part, final)
        elif not (resumable(final) and sha256_file(final) == expected):
            logger.info("%s: %s is not whole after an interrupted download; downloading again", ref.model_id, name)
            return False
        records[name] = FileRecord(size, expected, entry.get("url"))
    fsync_dir(folder)
    write_manifest(folder, Manifest(ref.model_id, journal.source, records))
    (folder / JOURNAL_NAME).unlink(missing_ok=True)
    fsync_dir(folder)
    logger.info("%s: finished an interrupted download (files re-hashed)", ref.model_id)
    return True


def _generated_files(model: OrtModel, environment_bytes: bytes, where: str) -> dict[str, bytes]:
    """The side files made from the ``/ort`` answer, once ``environment.json`` passed the checks the
    loader makes (so that nothing the loader would refuse is ever called complete)."""
    subject = f"environment.json of model {model.ref.model_id!r} from {where}"
    try:
        environment = parse_json(environment_bytes, subject)
    except ModelArtifactError as error:
        raise MalformedRegistryResponseError(f"{error}; nothing was cached") from None
    if not isinstance(environment, dict):
        raise MalformedRegistryResponseError(f"{subject} is not a JSON object; nothing was cached")
    try:
        check_environment(environment, subject)
    except ModelArtifactError as error:
        raise MalformedRegistryResponseError(f"{error}; nothing was cached") from None
    if model.colors:
        environment["COLORS"] = model.colors
    files = {
        ENVIRONMENT_FILE: json.dumps(environment, indent=4).encode(),
        CLASS_NAMES_FILE: write_class_names(model.classes),
        MODEL_TYPE_FILE: json.dumps(
            {"project_task_type": model.task_type, "model_type": model.model_type, "model_id": model.ref.model_id},
            indent=4,
        ).encode(),
    }
    if model.keypoints_metadata is not None:
        files[KEYPOINTS_FILE] = json.dumps(model.keypoints_metadata, indent=4).encode()
    return files


def _download(ref: ModelRef, folder: Path, settings: RegistrySettings, factory: ProgressFactory | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    from framepipe.artifacts.roboflow_api import fetch_ort
    from framepipe.artifacts.transport import new_session

    session = new_session()
    try:
        model = fetch_ort(session, settings, ref)
        where = public_url(settings.api_base_url)
        previous = read_journal(folder)
        journal = Journal(ref.model_id, "download", source=model.source)
        downloads = (model.weights, model.environment)
        for remote in downloads:
            before = previous.files.get(remote.name, {}) if previous and previous.phase == "download" else {}
            resumable = bool(before) and (
                (remote.sha256 is not None and before.get("sha256") == remote.sha256)
                or (remote.sha256 is None and bool(before.get("etag")))
            )
            if not resumable:
                part_path(folder / remote.name).unlink(missing_ok=True)
            journal.files[remote.name] = {
                "sha256": remote.sha256,
                "size": remote.size,
                "etag": before.get("etag") if resumable else None,
            }
        write_journal(folder, journal)
        results: dict[str, Downloaded] = {}
        for remote in downloads:
            results[remote.name] = _download_one(session, remote, folder, settings, ref, journal, factory)
        weights_part = part_path(folder / model.weights.name)
        problem = onnx_problem(weights_part)
        if problem is not None:
            weights_part.unlink(missing_ok=True)
            raise ModelIntegrityError(
                f"{model.weights.name} of model {ref.model_id!r} from {where} is not an ONNX model ({problem}): the "
                "registry sent something else (an error or login page?); it was discarded and nothing was cached"
            )
        with open_read(part_path(folder / ENVIRONMENT_FILE)) as f:
            environment_bytes = f.read()
        generated = _generated_files(model, environment_bytes, where)
        records: dict[str, FileRecord] = {
            model.weights.name: FileRecord(
                results[model.weights.name].size,
                results[model.weights.name].sha256,
                stored_url(model.weights.url),
                _announced(model.weights),
            )
        }
        for name, data in generated.items():
            write_synced(part_path(folder / name), data)
            downloaded = name == ENVIRONMENT_FILE
            records[name] = FileRecord(
                len(data),
                _sha256_bytes(data),
                stored_url(model.environment.url) if downloaded else None,
                _announced(model.environment) if downloaded else None,
            )
        journal.phase = "commit"
        journal.files = {name: record.to_json() for name, record in records.items()}
        write_journal(folder, journal)
        for name in records:
            os.replace(part_path(folder / name), folder / name)
        for other in WEIGHTS_FILE_NAMES:
            if other not in records:
                (folder / other).unlink(missing_ok=True)
        fsync_dir(folder)
        write_manifest(folder, Manifest(ref.model_id, model.source, records))
        (folder / JOURNAL_NAME).unlink(missing_ok=True)
        fsync_dir(folder)
        size = sum(r.size for r in records.values())
        checked = (
            "checked against the sha256 the registry announced"
            if model.weights.sha256
            else "the registry announced no sha256 (none announced): checked for length and ONNX form only"
        )
        logger.info("downloaded %s from %s (%d bytes, %s) into %s", ref.model_id, where, size, checked, folder)
    finally:
        session.close()


def _announced(remote: RemoteFile) -> tuple[str, ...]:
    return tuple(name for name, value in (("sha256", remote.sha256), ("size", remote.size)) if value is not None)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_one(
    session: requests.Session,
    remote: RemoteFile,
    folder: Path,
    settings: RegistrySettings,
    ref: ModelRef,
    journal: Journal,
    factory: ProgressFactory | None,
) -> Downloaded:
    safe_file_name(remote.name, "download target")

    def remember_etag(etag: str | None) -> None:
        journal.files[remote.name]["etag"] = etag
        write_journal(folder, journal)

    from framepipe.artifacts.download import download_file

    part = part_path(folder / remote.name)
    etag = journal.files[remote.name].get("etag")
    with _progress(factory, f"{ref.model_id} {remote.name}", remote.size) as update:
        result = download_file(
            session,
            remote,
            part,
            settings,
            f"model {ref.model_id!r}",
            resume=True,
            etag=etag,
            on_etag=remember_etag,
            progress=update,
        )
    if result.resumed_from:
        logger.info("%s: %s resumed at byte %d", ref.model_id, remote.name, result.resumed_from)
    return result


@contextmanager
def _progress(factory: ProgressFactory | None, description: str, total: int | None) -> Iterator[Any]:
    if factory is None:
        yield None
        return
    with factory(description, total) as update:
        yield update


@contextmanager
def _tqdm_factory(description: str, total: int | None) -> Iterator[Callable[[int, int | None], None]]:
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024, leave=True) as bar:

        def update(done: int, known_total: int | None) -> None:
            if known_total is not None and bar.total != known_total:
                bar.total = known_total
            bar.update(done - bar.n)

        yield update
