"""The model cache: a cache hit, and N processes racing for one uncached model.

    python benchmarks/cache.py [--processes 8] [--hits 20] [--json out.json]

A registry (``framepipe registry serve``'s server, on 127.0.0.1) holds the bundled detector.

- ``race``: N separate processes, started and waiting, are released at once to load the model
  into an empty cache. Reported: wall time until all have it, each process's load time, and how
  many times the server sent the weights (one is right).
- ``hit``: the model already in the cache. ``fetch_s`` is finding it complete and reading its
  files (lock, manifest, sizes, ``model_type.json``); ``session_s`` adds creating the ONNX Runtime
  session, each in a fresh process so nothing is shared (medians over ``--hits``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from framepipe.artifacts.registry_folder import add_model
from framepipe.artifacts.resolve import BUNDLED_DIR
from framepipe.server import RegistryServer

MODEL_ID = "bench-shapes/1"
KEY = "benchmark-key"


def _child(ready: str, go: str, session: bool) -> None:
    """In a child process: say ready, wait for go, load the model, print the seconds as JSON."""
    from framepipe.artifacts import fetch_model, load_folder

    if session:  # imports are not part of a cache hit
        import onnxruntime  # noqa: F401

        from framepipe.models import load_model
    Path(ready).touch()
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.001)
    began = time.perf_counter()
    fetched = fetch_model(MODEL_ID)
    load_folder(fetched.folder, fetched.model_id)
    fetch_s = time.perf_counter() - began
    session_s = None
    if session:
        began = time.perf_counter()
        load_model(MODEL_ID)
        session_s = fetch_s + time.perf_counter() - began
    print(json.dumps({"fetch_s": fetch_s, "session_s": session_s, "downloaded": fetched.downloaded}))


def _start_children(count: int, env: dict[str, str], work: Path, session: bool) -> list[dict[str, Any]]:
    go = work / "go"
    go.unlink(missing_ok=True)
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", str(work / f"ready-{i}"), str(go), "session" if session else "fetch"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    deadline = time.monotonic() + 60
    while not all((work / f"ready-{i}").exists() for i in range(count)) and time.monotonic() < deadline:
        time.sleep(0.005)
    go.touch()
    results = []
    for i, child in enumerate(children):
        out, _ = child.communicate(timeout=120)
        if child.returncode != 0:
            raise SystemExit(f"child {i} failed with exit code {child.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
        (work / f"ready-{i}").unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=8, help="processes in the race")
    parser.add_argument("--hits", type=int, default=20, help="cache hits measured (one process each)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.child[2] == "session")
        return

    with tempfile.TemporaryDirectory(prefix="framepipe-cache-bench-") as tmp:
        work = Path(tmp)
        add_model(work / "registry", BUNDLED_DIR / "framepipe-shapes" / "1", MODEL_ID)
        with RegistryServer(work / "registry", port=0, api_keys=(KEY,), record_requests=True).start() as server:
            env = dict(os.environ, MODEL_CACHE_DIR=str(work / "cache"), ROBOFLOW_API_KEY=KEY, API_BASE_URL=server.url)
            began = time.perf_counter()
            race = _start_children(args.processes, env, work, session=False)
            race_wall = time.perf_counter() - began
            downloads = server.count("file", "weights.onnx")
            hits = [_start_children(1, env, work, session=True)[0] for _ in range(args.hits)]
            assert server.count("file", "weights.onnx") == downloads, "a cache hit downloaded again"

    report = {
        "race": {
            "processes": args.processes,
            "wall_s": race_wall,
            "load_s_median": statistics.median(r["fetch_s"] for r in race),
            "load_s_max": max(r["fetch_s"] for r in race),
            "weights_downloads": downloads,
            "processes_that_downloaded": sum(r["downloaded"] for r in race),
        },
        "hit": {
            "count": len(hits),
            "fetch_ms_median": 1000 * statistics.median(r["fetch_s"] for r in hits),
            "session_ms_median": 1000 * statistics.median(r["session_s"] for r in hits),
        },
    }
    race_line = report["race"]
    hit_line = report["hit"]
    print(
        f"race of {race_line['processes']} processes: all loaded in {race_line['load_s_max']:.3f} s "
        f"(median {race_line['load_s_median']:.3f} s; {race_line['wall_s']:.2f} s with process start), "
        f"weights sent {race_line['weights_downloads']} time(s)"
    )
    print(
        f"cache hit: {hit_line['fetch_ms_median']:.1f} ms to find and read the model, "
        f"{hit_line['session_ms_median']:.1f} ms with its ONNX Runtime session (median of {hit_line['count']})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
