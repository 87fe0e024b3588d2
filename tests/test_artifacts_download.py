"""Downloads from a real registry server on 127.0.0.1: the Roboflow layout, the manifest, resume,
retries, the status-code errors, integrity checks and offline mode. Every test captures all log
records (DEBUG, urllib3 included) and fails if the API key shows up in one."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framepipe.artifacts import ModelCache, fetch_model, resolve_model
from framepipe.artifacts.cache import CacheState
from framepipe.artifacts.layout import part_path
from framepipe.artifacts.locking import lock_path
from framepipe.artifacts.manifest import JOURNAL_NAME, MANIFEST_NAME
from framepipe.artifacts.model_id import parse_model_id
from framepipe.errors import (
    InvalidModelIdError,
    ModelCacheLockTimeout,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelOfflineError,
    RegistryConnectionError,
    RegistryForbiddenError,
    RegistryModelNotFoundError,
    RegistryNotAuthorizedError,
    RegistryPaymentRequiredError,
    RegistryTimeoutError,
    RegistryUnsuccessfulRequestError,
    RegistryUsagePausedError,
    UnsafePathError,
)
from tests.artifacts_support import (
    MODEL_ID,
    SECRET,
    SOURCE,
    Fault,
    files_containing,
    make_registry,
    settings_for,
    sha256,
    start_server,
)

WEIGHTS_SHA = sha256(SOURCE / "weights.onnx")
WEIGHTS_SIZE = (SOURCE / "weights.onnx").stat().st_size
ROBOFLOW_FILES = {"weights.onnx", "environment.json", "class_names.txt", "model_type.json"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROBOFLOW_API_KEY", "API_KEY", "API_BASE_URL", "FRAMEPIPE_OFFLINE", "OFFLINE_MODE", "DEVICE_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]):
    """Every log record at DEBUG; at the end, none may hold the API key (nor stdout/stderr)."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert records, "nothing was logged: the check below would prove nothing"
    for record in records:
        assert SECRET not in record.getMessage(), record.getMessage()
    out, err = capfd.readouterr()
    assert SECRET not in out and SECRET not in err


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    make_registry(root)
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _assert_nothing_cached(cache: Path) -> None:
    folder = cache / "shapes" / "1"
    assert not (folder / "weights.onnx").exists()
    assert not (folder / MANIFEST_NAME).exists()
    assert not ModelCache(cache).inspect(MODEL_ID).state.usable


def test_download_writes_roboflow_layout_manifest_and_runs(registry, cache, logs, monkeypatch) -> None:
    with start_server(registry) as server:
        result = fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert result.downloaded and result.state is CacheState.COMPLETE
        folder = cache / "shapes" / "1"
        assert {p.name for p in folder.iterdir()} == ROBOFLOW_FILES | {MANIFEST_NAME}
        model_type = json.loads((folder / "model_type.json").read_text())
        assert model_type == {"project_task_type": "object-detection", "model_type": "yolov8n", "model_id": MODEL_ID}
        environment = json.loads((folder / "environment.json").read_text())
        assert environment["COLORS"] == json.loads((SOURCE / "environment.json").read_text())["COLORS"]
        assert (folder / "class_names.txt").read_text().splitlines() == ["circle", "square", "triangle", "star"]
        assert sha256(folder / "weights.onnx") == WEIGHTS_SHA
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        assert manifest["files"]["weights.onnx"] == {
            "size": WEIGHTS_SIZE,
            "sha256": WEIGHTS_SHA,
            "url": manifest["files"]["weights.onnx"]["url"],
            "announced": ["sha256", "size"],  # what the file was checked against
        }
        assert "api_key" not in manifest["source"] and "token" not in json.dumps(manifest)
        assert not files_containing(cache, SECRET)
        # a second load is a cache hit: no request at all
        again = fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert not again.downloaded
        assert server.count("ort") == 1 and server.count("file", "weights.onnx") == 1

    # the downloaded model runs in onnxruntime, from the cache, with the server gone and offline
    from framepipe.models import get_model

    monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))
    monkeypatch.setenv("FRAMEPIPE_OFFLINE", "1")
    model = get_model(MODEL_ID)
    answer = model.infer(np.full((192, 320, 3), 90, np.uint8))
    assert answer["image"] == {"width": 320, "height": 192} and isinstance(answer["predictions"], list)


def test_cache_written_by_roboflow_rules_loads_offline_untouched(tmp_path, monkeypatch, logs) -> None:
    from framepipe.models import get_model
    from tests.artifacts_support import copy_model
    from tests.onnx_models import build_model

    cache = tmp_path / "tmp-cache"
    folder = copy_model(cache / "legacy-v5" / "3", weights_name="yolov5s_weights.onnx")
    # a real YOLOv5-layout network ([B, N, 5 + classes]) under Roboflow's YOLOv5 file name
    rows = np.zeros((30, 5 + 4), np.float32)
    rows[0] = [320, 320, 64, 64, 0.9, 0.0, 0.95, 0.0, 0.0]  # one square
    build_model(folder / "yolov5s_weights.onnx", {"output0": rows})
    (folder / "model_type.json").write_text('{"project_task_type": "object-detection", "model_type": "yolov5v2s"}')
    (cache / "_file_locks").mkdir()
    (cache / "_file_locks" / "3.lock").touch()  # Roboflow's own download lock (per version id)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))
    monkeypatch.setenv("OFFLINE_MODE", "True")
    model: Any = get_model("legacy-v5/3")
    assert model.artifacts.weights_path.name == "yolov5s_weights.onnx"
    assert model.class_names == ["circle", "square", "triangle", "star"]
    result = model.infer(np.zeros((100, 200, 3), np.uint8))
    assert result["image"] == {"width": 200, "height": 100}
    assert [p["class"] for p in result["predictions"]] == ["square"] and model.head.name == "yolov5"
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before  # read as is
    entries = ModelCache(cache).entries()
    assert [(e.model_id, e.state) for e in entries] == [("legacy-v5/3", CacheState.FOREIGN)]
    logging.getLogger("tests").debug("loaded a Roboflow-written cache")


def test_invalid_model_type_json_is_not_trusted(registry, cache, logs) -> None:
    from tests.artifacts_support import copy_model

    folder = copy_model(cache / "shapes" / "1")  # written by another tool: no manifest
    (folder / "model_type.json").write_text('{"model_type": "yolov8n"}')
    inspection = ModelCache(cache).inspect(MODEL_ID)
    assert inspection.state is CacheState.CORRUPT and "project_task_type" in inspection.detail
    with start_server(registry) as server:
        with pytest.raises(ModelOfflineError, match=r"damaged.*project_task_type"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, offline=True))
        (folder / "model_type.json").write_text("{not json")
        with pytest.raises(ModelOfflineError, match=r"damaged.*not valid JSON"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, offline=True))
        result = fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))  # online: downloaded again
        assert result.downloaded and result.state is CacheState.COMPLETE
        assert json.loads((folder / "model_type.json").read_text())["project_task_type"] == "object-detection"
        assert server.count("file", "weights.onnx") == 1


def test_offline_never_touches_the_network_and_names_the_folder(registry, cache, logs, monkeypatch) -> None:
    with start_server(registry) as server:
        monkeypatch.setenv("FRAMEPIPE_OFFLINE", "1")
        monkeypatch.setenv("API_BASE_URL", server.url)
        monkeypatch.setenv("ROBOFLOW_API_KEY", SECRET)
        with pytest.raises(ModelOfflineError) as error:
            resolve_model(MODEL_ID, cache_dir=cache)
        assert str(cache / "shapes" / "1") in str(error.value) and "framepipe fetch shapes/1" in str(error.value)
        assert server.count() == 0


@pytest.mark.parametrize(
    ("status", "error_type", "words"),
    [
        (401, RegistryNotAuthorizedError, "401 not authorised.*API key"),
        (402, RegistryPaymentRequiredError, "402 payment required"),
        (403, RegistryForbiddenError, "403 forbidden.*no access"),
        (404, RegistryModelNotFoundError, "404 not found.*dataset id and version"),
        (423, RegistryUsagePausedError, "423.*paused"),
        (500, RegistryUnsuccessfulRequestError, "HTTP 500.*gave up after 3 attempts"),
    ],
)
def test_status_codes_map_to_specific_errors(registry, cache, logs, status, error_type, words) -> None:
    def hook(kind: str, model_id: str, name: str | None, number: int) -> Fault | None:
        return Fault(status=status) if status not in (401, 404) else None

    with start_server(registry, fault_hook=hook) as server:
        settings = settings_for(server)
        model_id = MODEL_ID
        if status == 401:
            settings = settings_for(server, api_key="wrong-key-123456")
        if status == 404:
            model_id = "shapes/7"
        with pytest.raises(error_type, match=words) as error:
            fetch_model(model_id, cache_dir=cache, settings=settings)
        message = str(error.value)
        assert model_id in message and SECRET not in message and "wrong-key-123456" not in message
        assert error.value.status == status
        assert server.count("ort") == (3 if status == 500 else 1)  # only 5xx is retried
        assert server.count("file") == 0
    _assert_nothing_cached(cache)
    if status == 404:
        assert isinstance(error.value, ModelNotFoundError)


def test_500_then_200_is_retried_and_completes(registry, cache, logs) -> None:
    def hook(kind: str, model_id: str, name: str | None, number: int) -> Fault | None:
        return Fault(status=503) if number == 1 else None

    with start_server(registry, fault_hook=hook) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert server.count("ort") == 2 and server.count("file", "weights.onnx") == 2
    assert sha256(cache / "shapes" / "1" / "weights.onnx") == WEIGHTS_SHA
    assert "attempt 1 of 3 failed" in logs.text


def test_truncated_response_is_resumed_with_range(registry, cache, logs) -> None:
    def hook(kind: str, model_id: str, name: str | None, number: int) -> Fault | None:
        return Fault(cut_after=1_000_000) if name == "weights.onnx" and number == 1 else None

    with start_server(registry, fault_hook=hook) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        weights = [r for r in server.requests if r.name == "weights.onnx"]
    # what arrived before the cut (up to the last whole chunk read) is kept and not asked for again
    assert [r.status for r in weights] == [200, 206] and weights[0].bytes_sent == 1_000_000
    assert 0 < weights[1].range_start <= 1_000_000
    assert weights[1].bytes_sent == WEIGHTS_SIZE - weights[1].range_start
    assert sha256(cache / "shapes" / "1" / "weights.onnx") == WEIGHTS_SHA
    assert not part_path(cache / "shapes" / "1" / "weights.onnx").exists()


def test_truncated_every_time_fails_then_the_next_load_resumes(registry, cache, logs) -> None:
    cutting = True

    def hook(kind: str, model_id: str, name: str | None, number: int) -> Fault | None:
        return Fault(cut_after=400_000) if cutting and name == "weights.onnx" else None

    with start_server(registry, fault_hook=hook) as server:
        with pytest.raises(RegistryConnectionError) as error:
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        message = str(error.value)
        kept = part_path(cache / "shapes" / "1" / "weights.onnx").stat().st_size
        assert f"{kept} of {WEIGHTS_SIZE} bytes arrived and are kept" in message
        assert "IncompleteRead" in message and "gave up after 3 attempts" in message
        starts = [r.range_start for r in server.requests if r.name == "weights.onnx"]
        assert len(starts) == 3 and starts[0] == 0 and starts[1] > 0 and starts[2] > starts[1]  # each one resumed
        assert ModelCache(cache).inspect(MODEL_ID).state is CacheState.INTERRUPTED
        assert not (cache / "shapes" / "1" / "weights.onnx").exists()
        cutting = False
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        last = [r for r in server.requests if r.name == "weights.onnx"][-1]
    assert (last.status, last.range_start) == (206, kept)
    assert sha256(cache / "shapes" / "1" / "weights.onnx") == WEIGHTS_SHA


def test_wrong_sha256_is_refused_and_nothing_cached(registry, cache, logs) -> None:
    def hook(kind: str, model_id: str, name: str | None, number: int) -> Fault | None:
        def lie(ort: dict) -> None:
            ort["sha256"]["weights.onnx"] = "0" * 64

        return Fault(edit_ort=lie) if kind == "ort" else None

    with start_server(registry, fault_hook=hook) as server:
        with pytest.raises(
            ModelIntegrityError, match=r"weights\.onnx of model 'shapes/1'.*has sha256 .* announced 0{64}"
        ):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert server.count("file", "weights.onnx") == 1  # not retried: the bytes would be the same
    _assert_nothing_cached(cache)
    assert not part_path(cache / "shapes" / "1" / "weights.onnx").exists()


def test_server_gone_mid_body_then_back_resumes(registry, cache, logs) -> None:
    def hook(kind: str, model_id: str, name: str | None, number: int) -> Fault | None:
        return Fault(cut_after=1_200_000, stop_server=True) if name == "weights.onnx" else None

    server = start_server(registry, fault_hook=hook)
    port = int(server.url.rsplit(":", 1)[1])
    settings = settings_for(server)
    try:
        with pytest.raises(RegistryConnectionError, match=r"connection to .* failed or broke.*gave up after 3"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings)
    finally:
        server.stop()
    kept = part_path(cache / "shapes" / "1" / "weights.onnx").stat().st_size
    assert 0 < kept <= 1_200_000
    assert ModelCache(cache).inspect(MODEL_ID).state is CacheState.INTERRUPTED
    with start_server(registry, port=port) as again:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings)
        weights = [r for r in again.requests if r.name == "weights.onnx"]
    assert [(r.status, r.range_start) for r in weights] == [(206, kept)]
    assert sha256(cache / "shapes" / "1" / "weights.onnx") == WEIGHTS_SHA


def test_stall_longer_than_the_read_timeout_fails_with_timeout_error(registry, cache, logs) -> None:
    def hook(kind: str, model_id: str, name: str | None, number: int) -> Fault | None:
        return Fault(stall_after=300_000, stall_s=2.0) if name == "weights.onnx" else None

    with start_server(registry, fault_hook=hook) as server:
        began = time.monotonic()
        with pytest.raises(RegistryTimeoutError, match=r"timed out waiting for .*weights\.onnx.*gave up after 2"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, read_timeout_s=0.4, retries=1))
        assert time.monotonic() - began < 4
    assert ModelCache(cache).inspect(MODEL_ID).state is CacheState.INTERRUPTED


def test_stall_is_waited_out_or_resumed(registry, cache, logs, tmp_path) -> None:
    def hook(kind: str, model_id: str, name: str | None, number: int) -> Fault | None:
        return Fault(stall_after=300_000, stall_s=2.0) if name == "weights.onnx" and number == 1 else None

    with start_server(registry, fault_hook=hook) as server:
        began = time.monotonic()
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, read_timeout_s=5.0))
        assert time.monotonic() - began >= 2.0  # a 2 s stall is within the 5 s read timeout: waited out
        assert server.count("file", "weights.onnx") == 1
    other = tmp_path / "other-cache"
    with start_server(registry, fault_hook=hook) as server:
        fetch_model(MODEL_ID, cache_dir=other, settings=settings_for(server, read_timeout_s=0.5))
        weights = [(r.status, r.range_start) for r in server.requests if r.name == "weights.onnx"]
    assert weights[-1][0] == 206 and 0 < weights[-1][1] <= 300_000  # timed out at 0.5 s, resumed
    assert sha256(other / "shapes" / "1" / "weights.onnx") == WEIGHTS_SHA


@pytest.mark.parametrize(
    "edit",
    [
        {"weightsFile": "../../escape.onnx"},
        {"weightsFile": "/tmp/escape.onnx"},
        {"weightsFile": "sub/weights.onnx"},
        {"weightsFile": "evil.onnx"},
        {"sha256": {"../escape.onnx": "0" * 64}},
        {"size": {"..": 1}},
    ],
)
def test_server_provided_names_that_escape_are_refused(registry, cache, logs, tmp_path, edit) -> None:
    def hook(kind: str, model_id: str, name: str | None, number: int) -> Fault | None:
        return Fault(edit_ort=lambda ort: ort.update(edit)) if kind == "ort" else None

    with start_server(registry, fault_hook=hook) as server:
        with pytest.raises(UnsafePathError, match=r"refused file name|stores weights only"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert server.count("file") == 0
    assert not list(tmp_path.rglob("escape.onnx")) and not list(tmp_path.rglob("evil.onnx"))
    _assert_nothing_cached(cache)


@pytest.mark.parametrize("bad", ["../etc/1", "ds/..", "a/../../b", "/etc/passwd", "..\\..\\x/1", "ds/.", "ds/"])
def test_model_ids_that_escape_the_cache_are_refused(registry, cache, logs, tmp_path, bad) -> None:
    with start_server(registry) as server:
        with pytest.raises(InvalidModelIdError):
            fetch_model(bad, cache_dir=cache, settings=settings_for(server))
        with pytest.raises(InvalidModelIdError):
            ModelCache(cache).remove(bad)
        assert server.count() == 0
    assert not cache.exists() or not any(cache.iterdir())
    logging.getLogger("tests").debug("refused %s", bad)


def test_damaged_cache_is_reported_offline_and_downloaded_again_online(registry, cache, logs) -> None:
    with start_server(registry) as server:
        settings = settings_for(server)
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings)
        weights = cache / "shapes" / "1" / "weights.onnx"
        data = weights.read_bytes()
        weights.write_bytes(data[:-10])  # shorter: the cheap size check on every load catches it
        with pytest.raises(ModelOfflineError, match=r"damaged .*weights\.onnx is \d+ bytes but its manifest says"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, offline=True))
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings)
        assert sha256(weights) == WEIGHTS_SHA and server.count("file", "weights.onnx") == 2

        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0xFF  # same size: only a re-hash (cache verify) finds it
        weights.write_bytes(bytes(flipped))
        assert ModelCache(cache).inspect(MODEL_ID).state is CacheState.COMPLETE
        entry = ModelCache(cache).verify(MODEL_ID)
        assert entry.state is CacheState.CORRUPT and "weights.onnx" in entry.detail
        with pytest.raises(ModelOfflineError, match="failed verification"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, offline=True))
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings)
        assert sha256(weights) == WEIGHTS_SHA and server.count("file", "weights.onnx") == 3
        assert ModelCache(cache).verify(MODEL_ID).state is CacheState.COMPLETE


def test_threads_share_one_download(registry, cache, logs) -> None:
    with start_server(registry, throttle=8_000_000) as server:
        settings = settings_for(server)
        results: list[object] = []
        barrier = threading.Barrier(6)

        def load() -> None:
            barrier.wait()
            results.append(fetch_model(MODEL_ID, cache_dir=cache, settings=settings))

        threads = [threading.Thread(target=load) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(results) == 6
        assert server.count("file", "weights.onnx") == 1 and server.count("ort") == 1
        assert sum(r.downloaded for r in results) == 1  # type: ignore[attr-defined]
    assert sha256(cache / "shapes" / "1" / "weights.onnx") == WEIGHTS_SHA


def test_lock_held_without_progress_times_out(registry, cache, logs) -> None:
    from filelock import FileLock

    path = lock_path(cache, parse_model_id(MODEL_ID))
    path.parent.mkdir(parents=True)
    with start_server(registry) as server, FileLock(str(path)):
        began = time.monotonic()
        with pytest.raises(ModelCacheLockTimeout, match=r"shapes/1 after 0.5 s without progress"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, lock_timeout_s=0.5))
        assert 0.4 < time.monotonic() - began < 5 and server.count() == 0


def test_interrupted_commit_is_finished_offline_after_rehash(registry, cache, logs) -> None:
    """A download killed after its last byte but before its manifest is finished by the next load,
    even offline, once every file's sha256 matches the journal."""
    with start_server(registry) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
    folder = cache / "shapes" / "1"
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    journal = {"format": 1, "model_id": MODEL_ID, "phase": "commit", "source": "", "files": manifest["files"]}
    (folder / JOURNAL_NAME).write_text(json.dumps(journal))
    (folder / MANIFEST_NAME).unlink()
    (folder / "class_names.txt").rename(part_path(folder / "class_names.txt"))  # one rename not done yet
    assert ModelCache(cache).inspect(MODEL_ID).state is CacheState.INTERRUPTED
    result = fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, offline=True))
    assert result.state is CacheState.COMPLETE and not (folder / JOURNAL_NAME).exists()
    assert ModelCache(cache).verify(MODEL_ID).state is CacheState.COMPLETE
    # but a file that does not match is never accepted: offline, that is an error
    (folder / JOURNAL_NAME).write_text(json.dumps(journal))
    (folder / "weights.onnx").write_bytes(b"not the model")
    with pytest.raises(ModelOfflineError, match="interrupted"):
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, offline=True))


def test_part_that_is_already_whole_is_checked_not_downloaded_again(registry, cache, logs, tmp_path) -> None:
    """Killed after the last byte of the weights but before the commit: the next load asks for the
    rest, hears 416 (nothing left), checks the sha256 and commits."""
    folder = cache / "shapes" / "1"
    folder.mkdir(parents=True)
    shutil.copy(SOURCE / "weights.onnx", part_path(folder / "weights.onnx"))
    journal = {"model_id": MODEL_ID, "phase": "download", "files": {"weights.onnx": {"sha256": WEIGHTS_SHA}}}
    (folder / JOURNAL_NAME).write_text(json.dumps(journal))
    with start_server(registry) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        weights = [(r.status, r.range_start, r.bytes_sent) for r in server.requests if r.name == "weights.onnx"]
    assert weights == [(416, WEIGHTS_SIZE, 0)]
    assert ModelCache(cache).verify(MODEL_ID).state is CacheState.COMPLETE


def test_cache_that_cannot_hold_locks_is_still_read(registry, tmp_path, logs) -> None:
    """A cache baked into a read-only image cannot take locks: complete models are read as they
    are, and a missing one is a clear error about the folder rather than a stack trace."""
    from framepipe.errors import ModelCacheError
    from tests.artifacts_support import copy_model

    cache = tmp_path / "baked"
    copy_model(cache / "shapes" / "1")
    (cache / "_file_locks").write_text("not a folder: lock files cannot be made here")
    with start_server(registry) as server:
        result = fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert result.state is CacheState.FOREIGN and not result.downloaded
        with pytest.raises(ModelCacheError, match=r"cannot create the download lock .*shapes/2.*writable"):
            fetch_model("shapes/2", cache_dir=cache, settings=settings_for(server))
        assert server.count() == 0
