"""The record framepipe keeps beside a downloaded model, and the journal of a download under way.

``.framepipe.json`` (the manifest) is written last, after every file is in place: it lists each
file's size and sha256, where the model came from (URLs without secrets) and when. Its presence
means "complete"; a load compares sizes against it, ``framepipe cache verify`` compares hashes.

``.framepipe.download.json`` (the journal) exists while a download is under way: it is written
before the first byte and removed after the manifest. Finding one with no process holding the
model's lock means that a download was interrupted.

Example:
    >>> from framepipe.artifacts.manifest import FileRecord, Manifest
    >>> m = Manifest("ds/3", "https://api.roboflow.com/ort/ds/3?nocache=true", {"weights.onnx": FileRecord(3, "ab")})
    >>> Manifest.from_json(m.to_json()).files["weights.onnx"].size
    3
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framepipe.artifacts.atomic import write_atomic
from framepipe.artifacts.folder import parse_json
from framepipe.artifacts.model_id import safe_file_name
from framepipe.errors import ModelArtifactError, ModelIntegrityError

MANIFEST_NAME = ".framepipe.json"
JOURNAL_NAME = ".framepipe.download.json"
FORMAT = 1
MAX_MANIFEST_BYTES = 1 << 20


def now_iso() -> str:
    """The current UTC time as ``2026-11-24T00:12:03Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class FileRecord:
    """One file of a model: its size, its sha256 and (for downloaded files) where it came from."""

    size: int
    sha256: str
    url: str | None = None
    announced: tuple[str, ...] | None = None
    """What the registry announced and the file was checked against (``sha256``, ``size``);
    ``()`` when it announced nothing (the sha256 was then taken from the bytes as they arrived),
    ``None`` for files framepipe made itself."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"size": self.size, "sha256": self.sha256}
        if self.url:
            data["url"] = self.url
        if self.announced is not None:
            data["announced"] = list(self.announced)
        return data


@dataclass(frozen=True)
class Manifest:
    """What ``.framepipe.json`` holds. ``bad_files`` lists files that ``cache verify`` found
    corrupt (the model is then not loaded until downloaded again)."""

    model_id: str
    source: str
    files: dict[str, FileRecord]
    downloaded_at: str = field(default_factory=now_iso)
    verified_at: str | None = None
    bad_files: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model_id": self.model_id,
            "source": self.source,
            "downloaded_at": self.downloaded_at,
            "verified_at": self.verified_at or self.downloaded_at,
            "files": {name: record.to_json() for name, record in sorted(self.files.items())},
            **({"bad_files": list(self.bad_files)} if self.bad_files else {}),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = MANIFEST_NAME) -> Manifest:
        """Parse and check a manifest; ``ModelIntegrityError`` when it is malformed."""
        try:
            files = {
                safe_file_name(name, f"file in {where}"): FileRecord(
                    _count(record["size"]),
                    str(record["sha256"]),
                    record.get("url"),
                    tuple(str(a) for a in record["announced"]) if isinstance(record.get("announced"), list) else None,
                )
                for name, record in data["files"].items()
            }
            return cls(
                model_id=str(data["model_id"]),
                source=str(data.get("source", "")),
                files=files,
                downloaded_at=str(data.get("downloaded_at", "")),
                verified_at=data.get("verified_at"),
                bad_files=tuple(str(n) for n in data.get("bad_files", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelIntegrityError(
                f"{where} is not a framepipe manifest ({type(error).__name__}: {error})"
            ) from None


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{str(value)[:20]!r} is not a byte count")
    return value


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest in ``folder``, ``None`` when there is none, ``ModelIntegrityError`` when unreadable."""
    path = folder / MANIFEST_NAME
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:  # a folder in its place, an unreadable file
        raise ModelIntegrityError(f"{path} cannot be read ({error.strerror or error})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ModelIntegrityError(f"{path} is larger than any framepipe manifest")
    try:
        data = parse_json(raw, path)
    except ModelArtifactError as error:
        raise ModelIntegrityError(str(error)) from None
    return Manifest.from_json(data, str(path))


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write ``.framepipe.json`` atomically."""
    write_atomic(folder / MANIFEST_NAME, (json.dumps(manifest.to_json(), indent=2) + "\n").encode())


@dataclass
class Journal:
    """What ``.framepipe.download.json`` holds.

    In phase ``download``, ``files`` has what the registry announced for each downloaded file
    (sha256, size, ETag), so that a later attempt knows whether a partial file may be resumed. In
    phase ``commit`` every temporary file is complete and checked, and ``files`` has their final
    sizes and sha256: a later attempt can finish the renames without the network.
    """

    model_id: str
    phase: str = "download"
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    started_at: str = field(default_factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model_id": self.model_id,
            "phase": self.phase,
            "source": self.source,
            "started_at": self.started_at,
            "files": self.files,
        }


def read_journal(folder: Path) -> Journal | None:
    """The journal in ``folder``; ``None`` when absent. An unreadable journal (a kill during its own
    atomic write cannot cause one, but a disk error can) reads as an empty one."""
    path = folder / JOURNAL_NAME
    try:
        with open(path, "rb") as f:
            data = parse_json(f.read(MAX_MANIFEST_BYTES), path)
        files = data.get("files", {})
        for name in files:
            safe_file_name(name, f"file in {path}")
        return Journal(
            model_id=str(data["model_id"]),
            phase=str(data.get("phase", "download")),
            files={str(k): dict(v) for k, v in files.items()},
            source=str(data.get("source", "")),
            started_at=str(data.get("started_at", "")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ModelArtifactError):
        return Journal(model_id="", phase="download")


def write_journal(folder: Path, journal: Journal) -> None:
    """Write ``.framepipe.download.json`` atomically."""
    write_atomic(folder / JOURNAL_NAME, (json.dumps(journal.to_json(), indent=2) + "\n").encode())
