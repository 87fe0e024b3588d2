"""Issue 14, fault 4: ``cache prune`` and ``cache rm`` never delete a model while another process
is loading it. A real process prunes (and removes) in a loop while this one loads the model with
``load_model`` in a loop, for a bounded time: no load may fail."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from framepipe.artifacts import ModelCache
from tests.artifacts_support import MODEL_ID, SECRET, make_registry, process_context, start_server

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the in-use lock is a POSIX flock")


def prune_in_loop(cache: str, stop: str, report: str, seconds: float) -> None:
    """In a child process: prune everything (and now and then ``rm``) until ``stop`` exists."""
    from framepipe.artifacts import ModelCache
    from framepipe.errors import FramepipeError

    removed = skipped = errors = rounds = 0
    deadline = time.monotonic() + seconds
    model_cache = ModelCache(cache)
    while not Path(stop).exists() and time.monotonic() < deadline and rounds < 100_000:
        rounds += 1
        try:
            if rounds % 7 == 0:
                model_cache.remove(MODEL_ID, timeout_s=0.05)
                removed += 1
            else:
                result = model_cache.prune(0)
                removed += len(result.removed)
                skipped += len(result.skipped_in_use)
        except FramepipeError:
            errors += 1  # rm: busy or already gone
        except OSError as error:  # a raw error from maintenance is a failure of its own
            Path(report).write_text(json.dumps({"crash": repr(error)}))
            return
        time.sleep(0.001)
    Path(report).write_text(json.dumps({"removed": removed, "skipped": skipped, "errors": errors, "rounds": rounds}))


def test_prune_loop_beside_a_load_loop_fails_no_load(tmp_path, monkeypatch) -> None:
    from framepipe.models import load_model

    registry = tmp_path / "registry"
    make_registry(registry)
    cache = tmp_path / "cache"
    stop, report = tmp_path / "stop", tmp_path / "report.json"
    with start_server(registry) as server:
        monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))
        monkeypatch.setenv("API_BASE_URL", server.url)
        monkeypatch.setenv("ROBOFLOW_API_KEY", SECRET)
        monkeypatch.setenv("FRAMEPIPE_RETRY_BACKOFF", "0.01")
        load_model(MODEL_ID)  # cached once before the race
        child = process_context().Process(target=prune_in_loop, args=(str(cache), str(stop), str(report), 30.0))
        child.start()
        failures: list[str] = []
        loads = 0
        try:
            deadline = time.monotonic() + 8.0
            while time.monotonic() < deadline and loads < 60:
                try:
                    model = load_model(MODEL_ID)
                    assert model.class_names == ["circle", "square", "triangle", "star"]
                    del model
                except Exception as error:
                    failures.append(f"{type(error).__name__}: {error}")
                loads += 1
        finally:
            stop.touch()
            child.join(timeout=30)
            child.kill()
    outcome = json.loads(report.read_text())
    print(f"{loads} loads, maintenance: {outcome}; {len(failures)} failures: {failures[:3]}")
    assert "crash" not in outcome, outcome
    assert outcome["removed"] >= 3, outcome  # the model really was removed between loads
    assert failures == [], f"{len(failures)} of {loads} loads failed: {failures[:3]}"
    assert loads >= 10


def test_tolerates_files_that_vanish_while_listing(tmp_path) -> None:
    from tests.artifacts_support import copy_model

    cache = ModelCache(tmp_path / "cache")
    for n in range(3):
        copy_model(cache.root / f"m{n}" / "1")
    refs = cache.model_refs()
    import shutil

    shutil.rmtree(cache.root / "m1")  # removed by another process between listing and sizing
    entries = [cache.entry(ref) for ref in refs]
    assert [e.size > 0 for e in entries] == [True, False, True]
