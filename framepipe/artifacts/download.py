"""Streaming one file to a temporary name: hashed while it arrives, fsynced, resumed with an HTTP
``Range`` request after a break, checked against the size and sha256 the registry announced.

The caller renames the temporary file into place once every file of the model is whole.

Example:
    >>> from pathlib import Path
    >>> from framepipe.artifacts.download import download_file
    >>> from framepipe.artifacts.layout import part_path
    >>> part_path(Path("/cache/ds/3/weights.onnx"))
    PosixPath('/cache/ds/3/.weights.onnx.part')
    >>> result = download_file(session, remote, part, settings, "model 'ds/3'")  # doctest: +SKIP
    >>> result.sha256  # doctest: +SKIP
    '9f86d0…'
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import requests

from framepipe.artifacts.roboflow_api import RemoteFile
from framepipe.artifacts.safe_files import open_append, open_new, open_read, resumable
from framepipe.artifacts.settings import RegistrySettings
from framepipe.artifacts.transport import (
    RetryableError,
    error_for_status,
    is_retryable_status,
    translate_request_error,
    with_retries,
)
from framepipe.artifacts.urls import public_url
from framepipe.errors import (
    FramepipeError,
    MalformedRegistryResponseError,
    ModelCacheError,
    ModelIntegrityError,
    RegistryConnectionError,
)

logger = logging.getLogger("framepipe.artifacts")
E = TypeVar("E", bound=FramepipeError)
CHUNK = 64 * 1024
_DIGITS = re.compile(r"[0-9]{1,18}")
_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18}|\*)")

Progress = Callable[[int, "int | None"], None]
"""Called with (bytes so far, total bytes or None) as a download advances."""


@dataclass(frozen=True)
class Downloaded:
    """A complete, checked temporary file."""

    name: str
    size: int
    sha256: str
    etag: str | None
    resumed_from: int


def _hash_prefix(path: Path, length: int) -> hashlib._Hash:  # the type of hashlib.sha256()
    digest = hashlib.sha256()
    with open_read(path) as f:
        remaining = length
        while remaining:
            chunk = f.read(min(CHUNK * 4, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest


def _total_from(response: requests.Response, offset: int) -> int | None:
    if response.status_code == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match and match.group(3) != "*":
            return int(match.group(3))
    length = response.headers.get("Content-Length", "").strip()
    return offset + int(length) if _DIGITS.fullmatch(length) else None


def _refuse(error: E, part: Path) -> E:
    """``error``, after deleting what arrived: these answers are never resumed."""
    part.unlink(missing_ok=True)
    return error


def _write(f: BinaryIO, chunk: bytes, part: Path) -> None:
    try:
        f.write(chunk)
    except OSError as error:
        raise ModelCacheError(
            f"cannot write {part} ({error.strerror or error}): free some space in {part.parent.parent.parent} or set "
            "MODEL_CACHE_DIR to a folder with room; what arrived so far is kept for the next attempt"
        ) from None


def _check_space(part: Path, needed: int, what: str) -> None:
    try:
        free = shutil.disk_usage(part.parent).free
    except OSError:
        return
    if needed > free:
        raise ModelCacheError(
            f"{what} needs {needed} more bytes but {part.parent} has {free} free: free some space or set "
            "MODEL_CACHE_DIR to a folder with room"
        )


def download_file(
    session: requests.Session,
    remote: RemoteFile,
    part: Path,
    settings: RegistrySettings,
    subject: str,
    *,
    resume: bool = True,
    etag: str | None = None,
    on_etag: Callable[[str | None], None] | None = None,
    progress: Progress | None = None,
) -> Downloaded:
    """Download ``remote`` into ``part`` and check it; returns its size and sha256.

    A ``part`` already there is continued with ``Range: bytes=<size>-`` when ``resume`` is true
    (with ``If-Range: <etag>`` when an ETag is known, so a changed file is sent whole); a server
    that answers 200 instead gets the file written from the start. 5xx answers, timeouts and
    broken connections are retried (``settings.retries``), each retry resuming where the last
    stopped. A file whose size or sha256 differs from what the registry announced is deleted and
    ``ModelIntegrityError`` raised (not retried: the registry would send the same bytes again).
    """
    safe_url = public_url(remote.url)
    what = f"{remote.name} of {subject}"
    known_etag = etag
    may_resume = resume

    def attempt(number: int) -> Downloaded:
        nonlocal known_etag, may_resume
        offset = part.lstat().st_size if may_resume and resumable(part) else 0
        # Files are stored byte for byte: a compressed body would be inflated without bound, or
        # fail every size check (a server that honours gzip sends the compressed length).
        headers: dict[str, str] = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if known_etag:
                headers["If-Range"] = known_etag
        logger.debug("GET %s for %s from byte %d (attempt %d)", safe_url, what, offset, number)
        received = 0
        total: int | None = None
        try:
            with session.get(
                remote.url,
                headers=headers,
                stream=True,
                timeout=(settings.connect_timeout_s, settings.read_timeout_s),
            ) as response:
                already_whole = response.status_code == 416 and offset > 0
                if already_whole and response.headers.get("Content-Range") != f"bytes */{offset}":
                    # The part is longer than the file: start again from nothing.
                    part.unlink(missing_ok=True)
                    raise RetryableError(RegistryConnectionError(f"{safe_url} refused to resume {what} (416)"))
                if response.status_code >= 400 and not already_whole:
                    failure = error_for_status(response.status_code, what, safe_url)
                    if is_retryable_status(response.status_code):
                        raise RetryableError(failure)
                    raise failure
                if not already_whole and response.status_code not in (200, 206):
                    raise _refuse(
                        MalformedRegistryResponseError(
                            f"{safe_url} answered HTTP {response.status_code} for {what} instead of the file (200 or "
                            "206); nothing was cached"
                        ),
                        part,
                    )
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                if not already_whole and encoding not in ("", "identity"):
                    raise _refuse(
                        MalformedRegistryResponseError(
                            f"{safe_url} sent {what} with Content-Encoding: {encoding} although framepipe asked for "
                            "the bytes as they are (Accept-Encoding: identity); nothing was cached"
                        ),
                        part,
                    )
                if already_whole:
                    pass  # every byte arrived before the last attempt ended; only the checks are left
                elif response.status_code == 206:
                    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
                    if not match or int(match.group(1)) != offset:
                        part.unlink(missing_ok=True)
                        raise RetryableError(RegistryConnectionError(f"{safe_url} sent the wrong range of {what}"))
                else:
                    offset = 0
                new_etag = response.headers.get("ETag", known_etag if already_whole else None)
                if new_etag != known_etag:
                    known_etag = new_etag
                    if on_etag is not None:
                        on_etag(new_etag)
                total = _total_from(response, offset)
                if remote.size is not None and total is not None and total != remote.size:
                    raise _refuse(
                        ModelIntegrityError(
                            f"{safe_url} sends {what} as {total} bytes but the registry announced {remote.size}; "
                            "nothing was cached. Check the registry's copy of the model"
                        ),
                        part,
                    )
                limit = remote.size if remote.size is not None else total
                if limit is None and not already_whole:
                    raise _refuse(
                        MalformedRegistryResponseError(
                            f"{safe_url} sent {what} without a Content-Length and the registry announced no size: a "
                            "body cut off on the way could not be told from a whole one, so nothing was cached"
                        ),
                        part,
                    )
                _check_space(part, (limit or 0) - offset, what)
                digest = _hash_prefix(part, offset) if offset else hashlib.sha256()
                if offset:
                    logger.info("resuming %s at byte %d of %s", what, offset, total if total is not None else "?")
                overflow = False
                target = open_append(part) if offset else open_new(part)
                if target is None:  # swapped for something else since it was checked: start again
                    may_resume = False
                    raise RetryableError(RegistryConnectionError(f"{part} changed during the download of {what}"))
                with target as f:
                    try:
                        for chunk in () if already_whole else response.iter_content(CHUNK):
                            room = (limit if limit is not None else 0) - offset - received
                            if len(chunk) > room:
                                chunk, overflow = chunk[: max(0, room)], True
                            _write(f, chunk, part)
                            digest.update(chunk)
                            received += len(chunk)
                            if progress is not None:
                                progress(offset + received, total)
                            if overflow:
                                break
                    finally:
                        f.flush()
                        os.fsync(f.fileno())
                if overflow:
                    raise _refuse(
                        ModelIntegrityError(
                            f"{safe_url} sent more than the announced {limit} bytes of {what}; framepipe stopped "
                            "reading there and discarded the file: nothing was cached"
                        ),
                        part,
                    )
        except requests.RequestException as error:
            may_resume = True
            retry = translate_request_error(error, what, remote.url, settings.secrets)
            if total is not None:
                retry = RetryableError(
                    type(retry.final)(
                        f"{retry.final}; {offset + received} of {total} bytes arrived and are kept in {part.name} "
                        "for the next attempt to resume"
                    )
                )
            raise retry from None
        size = offset + received
        may_resume = True
        if total is not None and size != total:
            raise RetryableError(
                RegistryConnectionError(f"download of {what} from {safe_url} ended after {size} of {total} bytes")
            )
        sha256 = digest.hexdigest()
        problem = None
        if remote.size is not None and size != remote.size:
            problem = f"is {size} bytes but the registry announced {remote.size}"
        elif remote.sha256 is not None and sha256 != remote.sha256:
            problem = f"has sha256 {sha256} but the registry announced {remote.sha256}"
        if problem and offset:
            # The bytes kept from an earlier attempt may be what is wrong: try once from nothing.
            logger.warning("%s %s after resuming at byte %d; downloading it whole", what, problem, offset)
            part.unlink(missing_ok=True)
            may_resume = False
            return attempt(number)
        if problem:
            part.unlink(missing_ok=True)
            raise ModelIntegrityError(
                f"{what} downloaded from {safe_url} {problem}; it was discarded and nothing was cached. Check the "
                "registry's copy of the model"
            )
        return Downloaded(remote.name, size, sha256, known_etag, offset)

    return with_retries(attempt, settings, f"download of {what}")
