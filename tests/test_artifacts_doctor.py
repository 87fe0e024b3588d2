"""``framepipe cache doctor [--fix]``: what a shared cache holds that it should not (links, other
users' folders, leftovers of interrupted downloads, damaged manifests), what it would do about
each, and with ``--fix`` doing it; healthy models are never touched."""

from __future__ import annotations

import json
import os
import sys

import pytest

from framepipe.artifacts import ModelCache
from framepipe.artifacts.cache import CacheState
from framepipe.artifacts.layout import part_path
from framepipe.artifacts.manifest import JOURNAL_NAME, MANIFEST_NAME
from framepipe.cli import main
from tests.artifacts_support import SOURCE, copy_model, make_registry, settings_for, sha256, start_server

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX symlinks")


def test_doctor_reports_then_fixes_a_messy_shared_cache(tmp_path, capsys, monkeypatch) -> None:
    from framepipe.artifacts import fetch_model

    registry = tmp_path / "registry"
    make_registry(registry)
    make_registry(registry, "broken/1")
    cache = tmp_path / "cache"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_text("keep me")
    with start_server(registry) as server:
        fetch_model("shapes/1", cache_dir=cache, settings=settings_for(server))
        fetch_model("broken/1", cache_dir=cache, settings=settings_for(server))
    healthy = sha256(cache / "shapes" / "1" / "weights.onnx")
    (cache / "broken" / "1" / MANIFEST_NAME).write_bytes(b"\xff not json")
    half = copy_model(cache / "half" / "2")
    (half / "weights.onnx").rename(part_path(half / "weights.onnx"))
    (half / JOURNAL_NAME).write_text(json.dumps({"model_id": "half/2", "phase": "download", "files": {}}))
    (half / ".class_names.txt.abc123.tmp").write_text("left by a killed write")
    os.symlink(outside / "target", part_path(cache / "shapes" / "1" / "model_type.json"))
    linked = copy_model(cache / "linked" / "3")
    (linked / "weights.onnx").unlink()
    os.symlink(SOURCE / "weights.onnx", linked / "weights.onnx")
    os.symlink(outside / "target", cache / "_file_locks" / "shapes" / "9.lock")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))

    assert main(["cache", "doctor"]) == 1
    report = capsys.readouterr().out
    for words in (
        "symlink",
        ".model_type.json.part",
        "linked/3",
        "9.lock",
        "interrupted",
        "half/2",
        ".tmp",
        "broken/1",
    ):
        assert words in report, (words, report)
    assert "would" in report and "--fix" in report
    assert (cache / "half" / "2" / JOURNAL_NAME).exists()  # a report changes nothing

    assert main(["cache", "doctor", "--fix"]) == 0
    fixed = capsys.readouterr().out
    assert "fixed" in fixed
    assert main(["cache", "doctor"]) == 0
    assert "no problems" in capsys.readouterr().out
    assert (outside / "target").read_text() == "keep me"
    assert not [p for p in cache.rglob("*") if p.is_symlink()]
    assert sha256(cache / "shapes" / "1" / "weights.onnx") == healthy
    states = {e.model_id: e.state for e in ModelCache(cache).entries()}
    assert states["shapes/1"] is CacheState.COMPLETE and states.get("broken/1") is not CacheState.CORRUPT
    with start_server(registry) as server:  # what was cleared downloads again
        assert fetch_model("broken/1", cache_dir=cache, settings=settings_for(server)).downloaded
