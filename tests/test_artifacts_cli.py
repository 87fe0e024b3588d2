"""The commands: ``framepipe registry add`` / ``registry serve`` / ``fetch`` in real processes, then a
pipeline run in a new process with ``FRAMEPIPE_OFFLINE=1`` and the registry gone; and
``framepipe cache list`` / ``verify`` / ``rm`` / ``prune``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from framepipe.artifacts import ModelCache
from framepipe.artifacts.locking import lock_path
from framepipe.artifacts.model_id import parse_model_id
from framepipe.cli import main
from framepipe.demo.clip import make_clip
from tests.artifacts_support import (
    SECRET,
    SOURCE,
    child_env,
    copy_model,
    files_containing,
    framepipe_command,
    make_registry,
    run,
    sha256,
)

OFFLINE_PIPELINE = """
import json, sys
from framepipe import InferencePipeline
answers = []
pipeline = InferencePipeline.init(sys.argv[1], "shapes/1", lambda prediction, frame: answers.append(prediction))
pipeline.start()
pipeline.join()
print(json.dumps({"frames": len(answers), "boxes": sum(len(a["predictions"]) for a in answers),
                  "image": answers[0]["image"]}))
"""


@pytest.fixture
def served(tmp_path: Path):
    """``framepipe registry serve`` in its own process on a free port; yields (url, process)."""
    root = tmp_path / "registry"
    add = run(
        [*framepipe_command(), "registry", "add", str(SOURCE), "--id", "shapes/1", "--root", str(root)],
        child_env(None, tmp_path / "unused"),
    )
    assert add.returncode == 0, add.stderr
    assert "added shapes/1" in add.stdout
    env = child_env(None, tmp_path / "unused", FRAMEPIPE_REGISTRY_API_KEYS=SECRET)
    server = subprocess.Popen(
        [*framepipe_command(), "registry", "serve", "--root", str(root), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "serving ... at http://127.0.0.1:PORT (...)"
        assert "serving" in line, server.stderr.read() if server.stderr else line
        url = line.split(" at ")[1].split()[0]
        yield url, server
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
        assert SECRET not in err  # the request log redacts the key


def test_fetch_then_offline_pipeline_with_the_registry_gone(served, tmp_path) -> None:
    url, server = served
    cache = tmp_path / "cache"
    fetched = run([*framepipe_command(), "fetch", "shapes/1"], child_env(url, cache), timeout=60)
    assert fetched.returncode == 0, fetched.stderr
    assert "shapes/1: downloaded, complete" in fetched.stdout
    assert "weights.onnx" in fetched.stderr  # the progress bar
    assert SECRET not in fetched.stdout + fetched.stderr and not files_containing(cache, SECRET)
    again = run([*framepipe_command(), "fetch", "shapes/1", "--no-progress"], child_env(url, cache))
    assert "shapes/1: already cached" in again.stdout

    server.terminate()  # no registry any more: from here on, nothing can be downloaded
    server.wait(timeout=10)
    clip = make_clip(tmp_path / "clip.mp4", seconds=1, seed=5, size=(320, 192))
    env = child_env(url, cache, FRAMEPIPE_OFFLINE="1")
    result = run([sys.executable, "-c", OFFLINE_PIPELINE, str(clip.video_path)], env, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["frames"] == 30 and report["image"] == {"width": 320, "height": 192} and report["boxes"] > 0
    # and the same from the command line
    out = tmp_path / "offline.jsonl"
    command = [*framepipe_command(), "run", "shapes/1", str(clip.video_path), "--sink", f"jsonl:{out}", "--quiet"]
    cli = run(command, env, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "frames=30" in cli.stdout and len(out.read_text().splitlines()) == 30

    # a model that was never fetched: offline, a clear error naming the folder, exit status 2
    missing = run([*framepipe_command(), "fetch", "shapes/2"], env)
    assert missing.returncode == 2
    assert str(cache / "shapes" / "2") in missing.stderr and "offline" in missing.stderr


def test_fetch_refuses_bad_ids_and_wrong_keys(served, tmp_path) -> None:
    url, _ = served
    cache = tmp_path / "cache"
    escape = run([*framepipe_command(), "fetch", "../../etc/1"], child_env(url, cache))
    assert escape.returncode == 2 and "refused model id" in escape.stderr
    wrong = run([*framepipe_command(), "fetch", "shapes/1", "--api-key", "not-the-key-42"], child_env(url, cache))
    assert wrong.returncode == 2 and "401 not authorised" in wrong.stderr and "shapes/1" in wrong.stderr
    assert "not-the-key-42" not in wrong.stderr and SECRET not in wrong.stderr
    bundled = run([*framepipe_command(), "fetch", "framepipe-shapes/1"], child_env(url, cache))
    assert bundled.returncode == 0 and "bundled with framepipe" in bundled.stdout


def test_registry_add_an_onnx_file_alone(tmp_path, capsys) -> None:
    lonely = tmp_path / "export"
    lonely.mkdir()
    shutil.copy(SOURCE / "weights.onnx", lonely / "best.onnx")
    root = tmp_path / "registry"
    assert main(["registry", "add", str(lonely / "best.onnx"), "--id", "doorbell/2", "--root", str(root)]) == 0
    folder = root / "doorbell" / "2"
    assert {p.name for p in folder.iterdir()} == {
        "weights.onnx",
        "environment.json",
        "class_names.txt",
        "model_type.json",
    }
    assert (folder / "class_names.txt").read_text().splitlines() == ["circle", "square", "triangle", "star"]
    assert json.loads((folder / "model_type.json").read_text()) == {
        "project_task_type": "object-detection",
        "model_type": "yolov8n",
        "model_id": "doorbell/2",
    }
    assert main(["registry", "add", str(lonely / "best.onnx"), "--id", "doorbell/2", "--root", str(root)]) == 2
    assert "already holds a model" in capsys.readouterr().err
    assert main(["registry", "add", str(tmp_path), "--id", "x/1", "--root", str(root)]) == 2


def test_cache_list_verify_rm(tmp_path, capsys, monkeypatch) -> None:
    from framepipe.artifacts import fetch_model
    from tests.artifacts_support import settings_for, start_server

    root = tmp_path / "registry"
    make_registry(root)
    cache = tmp_path / "cache"
    with start_server(root) as server:
        fetch_model("shapes/1", cache_dir=cache, settings=settings_for(server))
    copy_model(cache / "roboflow-made" / "4")  # no manifest: written by another tool
    monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "MODEL_ID" in out and "shapes/1" in out and "3.0 MiB" in out and "yes (" in out
    assert "roboflow-made/4" in out and "no manifest" in out and "_file_locks" not in out

    assert main(["cache", "verify"]) == 0
    assert "shapes/1: ok" in capsys.readouterr().out
    weights = cache / "shapes" / "1" / "weights.onnx"
    data = bytearray(weights.read_bytes())
    data[100] ^= 1
    weights.write_bytes(bytes(data))
    assert main(["cache", "verify", "shapes/1"]) == 1
    assert "CORRUPT" in capsys.readouterr().out
    assert main(["cache", "list"]) == 0
    assert "CORRUPT" in capsys.readouterr().out

    assert main(["cache", "rm", "shapes/1"]) == 0
    assert not (cache / "shapes").exists()
    assert main(["cache", "rm", "shapes/1"]) == 2
    assert main(["cache", "rm", "../roboflow-made/4"]) == 2
    assert "refused model id" in capsys.readouterr().err
    assert (cache / "roboflow-made" / "4" / "weights.onnx").exists()


def test_cache_prune_removes_least_recently_used_but_never_one_being_loaded(tmp_path, capsys, monkeypatch) -> None:
    cache = tmp_path / "cache"
    for age, model_id in enumerate(("old/1", "middle/1", "new/1")):
        ref = parse_model_id(model_id)
        copy_model(cache / ref.dataset_id / ref.version_id)
        lock = lock_path(cache, ref)
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
        stamp = time.time() - 3600 * (3 - age)
        os.utime(lock, (stamp, stamp))  # the lock file's time is "last used"
    monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))
    size = ModelCache(cache).entry(parse_model_id("new/1")).size
    with FileLock(str(lock_path(cache, parse_model_id("old/1")))):  # "old/1" is being loaded right now
        assert main(["cache", "prune", "--max-size", str(size + 1000)]) == 0
    out = capsys.readouterr().out
    assert "kept old/1: it is being loaded" in out and "removed middle/1" in out and "removed new/1" in out
    assert [e.model_id for e in ModelCache(cache).entries()] == ["old/1"]
    assert main(["cache", "prune", "--max-size", "1G"]) == 0
    assert [e.model_id for e in ModelCache(cache).entries()] == ["old/1"]
    assert sha256(cache / "old" / "1" / "weights.onnx") == sha256(SOURCE / "weights.onnx")
    with pytest.raises(SystemExit):
        main(["cache", "prune", "--max-size", "lots"])
