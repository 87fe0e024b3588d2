"""Issue 14, fault 1: a cache shared by several users (Roboflow's default ``/tmp/cache``). Another
user plants symlinks where a victim's download writes; no file outside the cache may change."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from framepipe.artifacts import fetch_model
from framepipe.artifacts.layout import part_path
from framepipe.artifacts.manifest import JOURNAL_NAME
from framepipe.errors import ModelCacheError
from tests.artifacts_support import MODEL_ID, SOURCE, make_registry, settings_for, sha256, start_server

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX symlinks and ownership")
WEIGHTS_SHA = sha256(SOURCE / "weights.onnx")


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (links not followed) with the sha256 of its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def victim(tmp_path: Path):
    registry = tmp_path / "registry"
    make_registry(registry)
    outside = tmp_path / "victim-home"  # files of the victim that the attacker wants overwritten
    outside.mkdir()
    for name in ("bashrc", "ssh-config", "notes", "authorized_keys", "lockfile"):
        (outside / name).write_text(f"precious {name}\n")
    (outside / "locks").mkdir()
    return registry, tmp_path / "shared-cache", outside


def test_planted_part_and_lock_links_never_write_outside_the_cache(victim, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    registry, cache, outside = victim
    folder = cache / "shapes" / "1"
    folder.mkdir(parents=True)
    os.symlink(outside / "bashrc", part_path(folder / "class_names.txt"))
    os.symlink(outside / "ssh-config", part_path(folder / "model_type.json"))
    os.symlink(outside / "notes", part_path(folder / "environment.json"))
    os.symlink(outside / "authorized_keys", part_path(folder / "weights.onnx"))
    # a resume journal that matches what the registry announces: the victim would append to the link
    journal = {"model_id": MODEL_ID, "phase": "download", "files": {"weights.onnx": {"sha256": WEIGHTS_SHA}}}
    (folder / JOURNAL_NAME).write_text(json.dumps(journal))
    (cache / "_file_locks" / "shapes").mkdir(parents=True)
    os.symlink(outside / "lockfile", cache / "_file_locks" / "shapes" / "1.lock")
    before = _snapshot(outside)
    with start_server(registry) as server:
        try:
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        except ModelCacheError as error:
            assert "symlink" in str(error)  # refusing is allowed; writing through the link is not
        else:
            assert sha256(folder / "weights.onnx") == WEIGHTS_SHA
            assert not any(p.is_symlink() for p in folder.iterdir())
    assert _snapshot(outside) == before


def test_a_symlinked_lock_folder_is_refused(victim) -> None:
    registry, cache, outside = victim
    cache.mkdir()
    os.symlink(outside / "locks", cache / "_file_locks")
    before = _snapshot(outside)
    with start_server(registry) as server, pytest.raises(ModelCacheError, match=r"_file_locks.*symlink"):
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
    assert _snapshot(outside) == before and not any((outside / "locks").iterdir())


def test_a_finished_part_that_is_a_link_is_never_moved_into_place(victim) -> None:
    """A commit journal names a part whose sha256 matches, but the part is another user's link:
    it is not renamed into the cache (the link's target could change later)."""
    registry, cache, outside = victim
    folder = cache / "shapes" / "1"
    folder.mkdir(parents=True)
    genuine = outside / "genuine.onnx"
    genuine.write_bytes((SOURCE / "weights.onnx").read_bytes())
    os.symlink(genuine, part_path(folder / "weights.onnx"))
    size = genuine.stat().st_size
    files = {"weights.onnx": {"size": size, "sha256": WEIGHTS_SHA}}
    (folder / JOURNAL_NAME).write_text(json.dumps({"model_id": MODEL_ID, "phase": "commit", "files": files}))
    with start_server(registry) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert server.count("file", "weights.onnx") == 1  # downloaded, not taken from the link
    assert not (folder / "weights.onnx").is_symlink() and sha256(folder / "weights.onnx") == WEIGHTS_SHA


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to hand a folder to nobody")
def test_a_world_writable_cache_owned_by_someone_else_is_warned_about(victim, caplog) -> None:
    caplog.set_level(logging.WARNING)
    registry, cache, _ = victim
    cache.mkdir()
    os.chmod(cache, 0o777)
    os.chown(cache, 65534, 65534)  # nobody
    with start_server(registry) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
    assert "owned by another user" in caplog.text and "writable by others" in caplog.text


def test_a_hard_linked_part_is_not_resumed(victim) -> None:
    """A hard link is a regular file, but a second name of someone's file: appending to it would
    change the victim's file outside the cache."""
    registry, cache, outside = victim
    folder = cache / "shapes" / "1"
    folder.mkdir(parents=True)
    os.link(outside / "authorized_keys", part_path(folder / "weights.onnx"))
    journal = {"model_id": MODEL_ID, "phase": "download", "files": {"weights.onnx": {"sha256": WEIGHTS_SHA}}}
    (folder / JOURNAL_NAME).write_text(json.dumps(journal))
    before = _snapshot(outside)
    with start_server(registry) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert [r.range_start for r in server.requests if r.name == "weights.onnx"] == [0]  # downloaded whole
    assert _snapshot(outside) == before and sha256(folder / "weights.onnx") == WEIGHTS_SHA
