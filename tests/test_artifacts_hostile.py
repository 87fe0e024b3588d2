"""Issue 14, faults 2, 3 and 6: a hostile or sloppy registry (written in the test, on 127.0.0.1)
serves each bad answer. Nothing is cached as complete, memory and disk stay bounded, and the
error is a framepipe error naming the registry and the problem."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from collections.abc import Callable

import pytest

from framepipe.artifacts import ModelCache, fetch_model, load_folder
from framepipe.artifacts.settings import RegistrySettings
from framepipe.errors import FramepipeError, ModelArtifactError
from tests.artifacts_support import SOURCE, HostileRegistry, copy_model, send_raw, sha256

WEIGHTS = (SOURCE / "weights.onnx").read_bytes()
ENVIRONMENT = (SOURCE / "environment.json").read_bytes()
MODEL_ID = "hostile/1"


def settings(url: str) -> RegistrySettings:
    return RegistrySettings(
        api_base_url=url, api_base_url_is_default=False, api_key="k-1", device_id="t", retries=1, backoff_s=0.01
    )


def serve(data: bytes, headers: dict[str, str] | None = None, length: bool = True, status: int = 200):
    def answer(connection, request: dict[str, str]) -> None:
        send_raw(connection, status, data, {"Content-Type": "application/octet-stream", **(headers or {})}, length)

    return answer


def environment_ok():
    return serve(ENVIRONMENT, {"Content-Type": "application/json"})


def endless(connection, request: dict[str, str]) -> None:
    """200 without a length, then bytes until the client hangs up (at most 256 MiB, 20 s)."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\r\n")
    block = WEIGHTS[: 1 << 16]
    deadline = time.monotonic() + 20
    for _ in range(4096):
        if time.monotonic() > deadline:
            break
        connection.sendall(block)


LOGIN_PAGE = b"<html><form>log in</form></html>"
BOMB = gzip.compress(b"\0" * (64 << 20), 9)  # about 65 KB that inflate to 64 MiB


def _cut_half(connection, request: dict[str, str]) -> None:
    send_raw(connection, 200, WEIGHTS[: len(WEIGHTS) // 2], {}, length=False)


Case = tuple[dict[str, object], Callable[..., None] | None, Callable[..., None] | None, bytes | None, str]
CASES: dict[str, Case] = {
    # fault 2: no sha256 and no size announced (Roboflow's case)
    "cut-off-close-delimited": ({}, _cut_half, None, None, r"without a Content-Length"),
    "status-204": ({}, serve(b"", status=204), None, None, r"HTTP 204"),
    "html-login-page": ({}, serve(LOGIN_PAGE, {"Content-Type": "text/html"}), None, None, r"not an ONNX model"),
    "eight-bytes": ({}, serve(b"\x08\x07\x01\x00\x00\x00\x00\x00"), None, None, r"not an ONNX model"),
    "environment-not-an-object": ({}, None, serve(b"[1, 2]"), None, r"environment\.json.*not a JSON object"),
    "environment-bad-preprocessing": ({}, None, serve(b'{"PREPROCESSING": 5}'), None, r"PREPROCESSING"),
    # fault 3: no cap on what the client reads
    "endless-body": ({"size": {"weights.onnx": len(WEIGHTS)}}, endless, None, None, r"more than the announced"),
    "gzip-bomb-file": ({}, serve(BOMB, {"Content-Encoding": "gzip"}), None, None, r"Content-Encoding"),
    "gzip-bomb-ort": ({}, None, None, b"gzip", r"larger than"),
    # fault 6: raw exceptions from deep nesting and huge numbers
    "nested-ort": ({}, None, None, b"[" * 200_000 + b"]" * 200_000, r"not JSON"),
    "huge-number-ort": ({}, None, None, b'{"ort": {"size": {"weights.onnx": ' + b"9" * 5000 + b"}}}", r"not JSON"),
    "nested-environment": ({}, None, serve(b'{"a":' * 100_000 + b"1" + b"}" * 100_000), None, r"environment\.json"),
    "huge-number-environment": ({}, None, serve(b'{"PREPROCESSING": {}, "x": ' + b"9" * 5000 + b"}"), None, r"environ"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_answers_are_never_cached_and_stay_bounded(case, tmp_path) -> None:
    ort, weights, environment, ort_raw, words = CASES[case]
    cache = tmp_path / "cache"
    folder = cache / "hostile" / "1"
    with HostileRegistry() as registry:
        registry.ort = {"modelType": "yolov8n", "classes": ["a"], **ort}
        if ort_raw == b"gzip":
            registry.ort_answer = serve(BOMB, {"Content-Encoding": "gzip", "Content-Type": "application/json"})
        elif ort_raw is not None:
            registry.ort_raw = ort_raw
        registry.files["weights"] = weights or serve(WEIGHTS)
        registry.files["environment"] = environment or environment_ok()
        url = registry.url
        tracemalloc.start()
        try:
            with pytest.raises(FramepipeError, match=words) as error:
                fetch_model(MODEL_ID, cache_dir=cache, settings=settings(url))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        file_requests = [headers for path, headers in registry.seen if path.startswith("/files/weights")]
    assert "127.0.0.1" in str(error.value)  # the error names the registry
    assert peak < 48 << 20, f"{peak / 2**20:.0f} MiB of Python memory at the peak"
    on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
    assert on_disk <= len(WEIGHTS) + (1 << 20), f"{on_disk} bytes on disk"  # the weights, a small environment
    assert not (folder / "weights.onnx").exists() and not (folder / ".framepipe.json").exists()
    assert not ModelCache(cache).inspect(MODEL_ID).state.usable
    assert all(h.get("accept-encoding") == "identity" for h in file_requests), file_requests


def test_a_registry_that_honours_gzip_still_delivers_the_file(tmp_path) -> None:
    """Asked for ``identity``, a server that compresses whenever the client allows it sends the
    bytes as they are: the download succeeds (it failed whenever gzip was offered)."""

    def polite(connection, request: dict[str, str]) -> None:
        if "gzip" in request.get("accept-encoding", ""):
            send_raw(connection, 200, gzip.compress(WEIGHTS), {"Content-Encoding": "gzip"})
        else:
            send_raw(connection, 200, WEIGHTS, {})

    cache = tmp_path / "cache"
    with HostileRegistry() as registry:
        registry.ort = {"modelType": "yolov8n", "classes": ["circle", "square", "triangle", "star"]}
        registry.files["weights"] = polite
        registry.files["environment"] = environment_ok()
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings(registry.url))
    assert sha256(cache / "hostile" / "1" / "weights.onnx") == sha256(SOURCE / "weights.onnx")
    manifest = json.loads((cache / "hostile" / "1" / ".framepipe.json").read_text())
    assert manifest["files"]["weights.onnx"]["announced"] == []  # nothing announced: not "verified"
    entry = ModelCache(cache).entries()[0]
    assert not entry.registry_sha256 and entry.state.usable


def test_non_utf8_class_names_is_a_framepipe_error(tmp_path) -> None:
    folder = copy_model(tmp_path / "m")
    (folder / "class_names.txt").write_bytes(b"cat\n\xff\xfedog\n")
    with pytest.raises(ModelArtifactError, match="not UTF-8"):
        load_folder(folder, "m")


def test_deep_or_huge_environment_json_on_disk_is_a_framepipe_error(tmp_path) -> None:
    folder = copy_model(tmp_path / "m")
    for text in ('{"a":' * 100_000 + "1" + "}" * 100_000, '{"PREPROCESSING": {}, "n": ' + "9" * 5000 + "}"):
        (folder / "environment.json").write_text(text)
        with pytest.raises(ModelArtifactError, match=r"environment\.json"):
            load_folder(folder, "m")


def test_announced_sha256_is_what_verified_means(tmp_path, caplog) -> None:
    caplog.set_level("INFO")
    cache = tmp_path / "cache"
    with HostileRegistry() as registry:
        registry.ort = {"modelType": "yolov8n", "classes": ["circle", "square", "triangle", "star"]}
        registry.files["weights"] = serve(WEIGHTS)
        registry.files["environment"] = environment_ok()
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings(registry.url))
    assert "verified" not in caplog.text and "none announced" in caplog.text
