"""Helpers for the artifact-cache tests: a registry folder holding the real bundled model, a real
registry server on 127.0.0.1, and child processes that load models from it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from framepipe.artifacts.registry_server import FaultHook, RegistryServer, add_model
from framepipe.artifacts.resolve import BUNDLED_DIR
from framepipe.artifacts.settings import RegistrySettings

SECRET = "sk-test-7f3a9c0b1d2e4f5a"
"""The API key every test uses; it must never show up in a log line, a message or the cache."""
MODEL_ID = "shapes/1"
SOURCE = BUNDLED_DIR / "framepipe-shapes" / "1"
REPO = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_registry(root: Path, model_id: str = MODEL_ID) -> Path:
    """A registry folder holding the bundled detector as ``model_id``."""
    return add_model(root, SOURCE, model_id)


def start_server(
    root: Path,
    keys: tuple[str, ...] = (SECRET,),
    fault_hook: FaultHook | None = None,
    throttle: float | None = None,
    port: int = 0,
) -> RegistryServer:
    return RegistryServer(root, port=port, api_keys=keys, fault_hook=fault_hook, throttle_bytes_per_s=throttle).start()


def settings_for(server: RegistryServer, **overrides: object) -> RegistrySettings:
    """Client settings pointing at ``server`` with quick retries."""
    values: dict[str, object] = {
        "api_base_url": server.url,
        "api_base_url_is_default": False,
        "api_key": SECRET,
        "device_id": "test-device",
        "backoff_s": 0.02,
        "retries": 2,
        "read_timeout_s": 5.0,
        "lock_timeout_s": 30.0,
    }
    values.update(overrides)
    return RegistrySettings(**values)  # type: ignore[arg-type]


def child_env(server_url: str | None, cache: Path, **extra: str) -> dict[str, str]:
    """Environment of a child process: the registry, the cache, the key, quick retries."""
    env = {k: v for k, v in os.environ.items() if k not in ("ROBOFLOW_API_KEY", "API_KEY", "API_BASE_URL")}
    env.update(
        {
            "MODEL_CACHE_DIR": str(cache),
            "ROBOFLOW_API_KEY": SECRET,
            "FRAMEPIPE_RETRY_BACKOFF": "0.05",
            "PYTHONPATH": str(REPO),
        }
    )
    if server_url is not None:
        env["API_BASE_URL"] = server_url
    env.update(extra)
    return env


def framepipe_command() -> list[str]:
    """The ``framepipe`` console script of this environment."""
    script = Path(sys.executable).with_name("framepipe")
    return [str(script)] if script.exists() else [sys.executable, "-m", "framepipe"]


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def files_containing(folder: Path, needle: str) -> list[Path]:
    """Every file under ``folder`` whose bytes contain ``needle``."""
    data = needle.encode()
    return [p for p in folder.rglob("*") if p.is_file() and data in p.read_bytes()]


def copy_model(destination: Path, weights_name: str = "weights.onnx") -> Path:
    """The bundled model's files copied into ``destination`` (weights under ``weights_name``)."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(SOURCE / "weights.onnx", destination / weights_name)
    for name in ("environment.json", "class_names.txt", "model_type.json"):
        shutil.copy(SOURCE / name, destination / name)
    return destination


def load_in_child(
    model_id: str, cache: str, settings: RegistrySettings, ready: str = "", go: str = "", result: str = ""
) -> None:
    """Run in a child process: say ``ready``, wait for ``go``, load ``model_id`` into ``cache``, and
    write what was loaded (sha256 of the weights, state, seconds) as JSON to ``result``."""
    import json
    import time

    from framepipe.artifacts import ModelCache, fetch_model, load_folder

    if ready:
        Path(ready).touch()
    deadline = time.monotonic() + 60
    while go and not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.002)
    began = time.monotonic()
    fetched = fetch_model(model_id, cache_dir=cache, settings=settings)
    artifacts = load_folder(fetched.folder, fetched.model_id)
    seconds = time.monotonic() - began
    if result:
        inspection = ModelCache(cache).inspect(model_id)
        manifest = inspection.manifest.files["weights.onnx"].sha256 if inspection.manifest else None
        report = {
            "sha256": sha256(artifacts.weights_path),
            "manifest_sha256": manifest,
            "state": inspection.state.value,
            "path": str(artifacts.weights_path),
            "seconds": seconds,
            "downloaded": fetched.downloaded,
        }
        Path(result).write_text(json.dumps(report))


def process_context():  # -> multiprocessing context
    """Processes forked from a server that has framepipe imported already: real, separate processes
    that start in milliseconds (``spawn`` where ``forkserver`` does not exist)."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["framepipe.artifacts", "tests.artifacts_support"])
        return context
    return multiprocessing.get_context("spawn")
