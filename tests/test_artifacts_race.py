"""Real processes against a real registry: 8 processes load one uncached model at once, and a
download process is killed with SIGKILL at random points, 20 times."""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path

import pytest

from framepipe.artifacts import fetch_model
from framepipe.artifacts.cache import CacheState, inspect_folder, verify_hashes
from framepipe.artifacts.layout import part_path
from framepipe.errors import ModelOfflineError
from tests.artifacts_support import (
    MODEL_ID,
    SOURCE,
    load_in_child,
    make_registry,
    process_context,
    settings_for,
    sha256,
    start_server,
)

WEIGHTS_SHA = sha256(SOURCE / "weights.onnx")
WEIGHTS_SIZE = (SOURCE / "weights.onnx").stat().st_size

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL and POSIX process semantics")


def test_eight_processes_one_download(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    make_registry(registry)
    cache = tmp_path / "cache"
    go = tmp_path / "go"
    context = process_context()
    # about 0.8 s of body: long enough that all eight are asking while the first downloads
    with start_server(registry, throttle=4_000_000) as server:
        settings = settings_for(server)
        children = [
            context.Process(
                target=load_in_child,
                args=(
                    MODEL_ID,
                    str(cache),
                    settings,
                    str(tmp_path / f"ready-{i}"),
                    str(go),
                    str(tmp_path / f"{i}.json"),
                ),
            )
            for i in range(8)
        ]
        try:
            for child in children:
                child.start()
            assert _wait_for(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(8)), timeout=60)
            go.touch()
            began = time.monotonic()
            for child in children:
                child.join(timeout=60)
            race_seconds = time.monotonic() - began
        finally:
            for child in children:
                child.kill()
        assert [child.exitcode for child in children] == [0] * 8
        assert len({child.pid for child in children}) == 8
        results = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(8)]
        assert server.count("file", "weights.onnx") == 1, server.requests
        assert server.count("ort") == 1
    assert {r["sha256"] for r in results} == {WEIGHTS_SHA}
    assert {r["manifest_sha256"] for r in results} == {WEIGHTS_SHA}
    assert {r["state"] for r in results} == {"complete"}
    assert len({r["path"] for r in results}) == 1
    assert sum(r["downloaded"] for r in results) == 1
    print(f"race of 8 processes: {race_seconds:.2f} s wall, slowest load {max(r['seconds'] for r in results):.2f} s")


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return False


def test_sigkill_at_random_points_never_exposes_a_partial_file(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    make_registry(registry)
    cache = tmp_path / "cache"
    folder = cache / "shapes" / "1"
    part = part_path(folder / "weights.onnx")
    rng = random.Random(20261124)
    resumed = 0
    killed_mid_body = 0
    with start_server(registry, throttle=12_000_000) as server:  # about 0.27 s of body
        settings = settings_for(server)
        context = process_context()
        for round_number in range(20):
            child = context.Process(target=load_in_child, args=(MODEL_ID, str(cache), settings))
            child.start()
            try:
                if round_number % 4 == 3:
                    time.sleep(rng.uniform(0.0, 0.6))  # anywhere: start-up, request, body, commit, done
                else:
                    target = rng.uniform(0.05, 0.95) * WEIGHTS_SIZE  # somewhere in the body
                    _wait_for(lambda t=target: part.exists() and part.stat().st_size >= t, timeout=20)
            finally:
                child.kill()  # SIGKILL
                child.join(timeout=20)
            assert child.exitcode in (0, -9)
            if part.exists() and 0 < part.stat().st_size < WEIGHTS_SIZE:
                killed_mid_body += 1

            # what the kill left is never taken for a whole model
            inspection = inspect_folder(folder)
            assert inspection.state in (CacheState.MISSING, CacheState.INTERRUPTED, CacheState.COMPLETE)
            if inspection.state is CacheState.COMPLETE:
                assert inspection.manifest is not None and verify_hashes(folder, inspection.manifest) == []
            try:
                offline = fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, offline=True))
            except ModelOfflineError:
                pass
            else:  # offline success is only allowed for files that re-hash correctly
                assert offline.state is CacheState.COMPLETE and sha256(folder / "weights.onnx") == WEIGHTS_SHA

            # and the next load completes, resuming the partial file where there is one
            before = len(server.requests)
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings)
            assert sha256(folder / "weights.onnx") == WEIGHTS_SHA
            final = inspect_folder(folder)
            assert final.state is CacheState.COMPLETE and final.manifest is not None
            assert verify_hashes(folder, final.manifest) == []
            resumed += any(r.name == "weights.onnx" and r.status == 206 for r in server.requests[before:])
            shutil.rmtree(folder)
    print(f"kills mid-body: {killed_mid_body}, resumed: {resumed}")
    assert killed_mid_body >= 8 and resumed >= 8, (killed_mid_body, resumed)
