"""The inference server under load: requests/s and latency at several concurrencies, the batches it
formed and its memory, against an in-process ``model.infer`` loop as the ceiling.

    python benchmarks/server.py --video clip.mp4 [--model yolov8n.onnx | --model-id framepipe-shapes/1] \
        [--url http://127.0.0.1:9001 [--server-pid PID]] [--requests 200] [--concurrency 1,4,16] \
        [--frames 30] [--json out.json]

- Frames: the first ``--frames`` frames of ``--video`` (decoded with OpenCV), JPEG-encoded (quality
  95) once; the requests cycle through them.
- The server: ``--url`` when given, else ``framepipe serve --port 0`` started here as a separate
  process (its RSS is sampled from /proc every 20 ms; with ``--url``, pass ``--server-pid`` for it).
  ``--model`` (an .onnx file, e.g. the shared YOLOv8n) is put into a temporary model cache as
  ``bench-model/1``.
- Load: for each concurrency C, C threads, each with its own kept-alive connection, send
  ``--requests`` requests in all to ``POST /infer/object_detection`` (base64 JSON bodies, built before
  timing), each sending its next one as soon as its answer is in. Reported: requests/s, latency
  p50/p95/p99, errors and 5xx, the batches formed (from the server's ``/metrics``, before and after),
  the server's peak RSS.
- Ceiling: in a fresh process, before and after the server's runs (the better one counts),
  ``get_model(...).infer`` on the decoded frames, with one call in flight and with two (two
  threads), the best of both; the latency of one ``infer`` call (p50/p95 with one in flight); and,
  like for like with the server's work, JPEG decoding plus ``infer`` with one in flight.
  ``ratio_to_ceiling`` = server requests/s / ceiling requests/s; ``p95_c1_vs_infer`` = server p95
  at concurrency 1 / ``infer``'s p95.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import requests

CONFIDENCE, IOU = 0.25, 0.7
BATCH_BUCKET = re.compile(r'^framepipe_model_batch_size_(sum|count)\{model="([^"]+)"\} ([0-9.e+]+)$')
BUCKET = re.compile(r'^framepipe_model_batch_size_bucket\{model="([^"]+)",le="([^"]+)"\} ([0-9.e+]+)$')


def read_frames(video: str, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(video)
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"no frame could be read from {video}")
    return frames


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RssSampler:
    """The peak RSS of process ``pid`` while running (sampled every 20 ms)."""

    def __init__(self, pid: int | None) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.pid is not None:
            value = rss_mb(self.pid)
            if value is not None:
                self.peak = max(self.peak, value)
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def batch_stats(url: str) -> dict[str, dict[str, float]]:
    """Per model: runs (session runs), frames, and the cumulative batch-size buckets."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    stats: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = BATCH_BUCKET.match(line)
        if match:
            kind, model, value = match.groups()
            stats.setdefault(model, {})["runs" if kind == "count" else "frames"] = float(value)
        match = BUCKET.match(line)
        if match:
            model, bound, value = match.groups()
            stats.setdefault(model, {})[f"le_{bound}"] = float(value)
    return stats


def batches_between(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], model: str) -> Any:
    now, then = after.get(model, {}), before.get(model, {})
    runs = now.get("runs", 0) - then.get("runs", 0)
    frames = now.get("frames", 0) - then.get("frames", 0)
    buckets = {k[3:]: now[k] - then.get(k, 0) for k in now if k.startswith("le_")}
    return {"runs": runs, "frames": frames, "mean": frames / runs if runs else None, "cumulative": buckets}


def load(url: str, bodies: list[bytes], concurrency: int, total: int) -> dict[str, Any]:
    """``total`` requests from ``concurrency`` threads, each waiting for its answer."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/json"}
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            began = time.perf_counter()
            try:
                response = session.post(
                    f"{url}/infer/object_detection", data=bodies[index % len(bodies)], headers=headers, timeout=120
                )
                status = response.status_code
                ok = status == 200 and "predictions" in response.json()
            except (requests.RequestException, ValueError) as error:
                status, ok = -1, False
                with lock:
                    errors.append(type(error).__name__)
            elapsed = time.perf_counter() - began
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if ok:
                    latencies.append(elapsed)
        session.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    failed = total - len(latencies)
    return {
        "concurrency": concurrency,
        "requests": total,
        "wall_s": round(wall, 3),
        "rps": round(len(latencies) / wall, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "errors": failed,
        "status_5xx": sum(n for s, n in statuses.items() if s >= 500),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "error_kinds": sorted(set(errors)),
    }


def ceiling(model_id: str, video: str, frames: int, total: int) -> dict[str, Any]:
    """In this (fresh) process: ``infer`` with one and with two calls in flight."""
    from framepipe.models import get_model

    images = read_frames(video, frames)
    model = get_model(model_id)
    for image in images[:3]:
        model.infer(image, confidence=CONFIDENCE, iou_threshold=IOU)
    latencies: list[float] = []
    began = time.perf_counter()
    for index in range(total):
        start = time.perf_counter()
        model.infer(images[index % len(images)], confidence=CONFIDENCE, iou_threshold=IOU)
        latencies.append(time.perf_counter() - start)
    one = total / (time.perf_counter() - began)
    counter, lock = iter(range(total)), threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            model.infer(images[index % len(images)], confidence=CONFIDENCE, iou_threshold=IOU)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    two = total / (time.perf_counter() - began)
    # like for like with the server's work: decode the JPEG too, one call in flight
    jpegs = [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1] for image in images]
    began = time.perf_counter()
    for index in range(total):
        decoded = cv2.imdecode(jpegs[index % len(jpegs)], cv2.IMREAD_COLOR)
        assert decoded is not None
        model.infer(decoded, confidence=CONFIDENCE, iou_threshold=IOU)
    decode_one = total / (time.perf_counter() - began)
    return {
        "rps_decode_and_infer_1_in_flight": round(decode_one, 2),
        "rps_1_in_flight": round(one, 2),
        "rps_2_in_flight": round(two, 2),
        "rps": round(max(one, two), 2),
        "infer_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "infer_p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "peak_rss_mb": round(rss_mb(os.getpid(), "VmHWM") or 0.0, 1),
    }


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "framepipe", "serve", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if match:
            url = match.group(1)
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                        return process, url
                except requests.RequestException:
                    pass
                time.sleep(0.05)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise SystemExit("framepipe serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", required=True)
    parser.add_argument("--model", help="an .onnx file, served as bench-model/1 from a temporary cache")
    parser.add_argument("--model-id", default="framepipe-shapes/1", help="a model id (when no --model)")
    parser.add_argument("--url", help="a running server (default: start framepipe serve here)")
    parser.add_argument("--server-pid", type=int, help="the running server's pid, for its RSS")
    parser.add_argument("--requests", type=int, default=200, help="requests at each concurrency")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--ceiling-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_only:
        print(json.dumps(ceiling(args.model_id, args.video, args.frames, args.requests)))
        return

    work = Path(tempfile.mkdtemp(prefix="framepipe-server-bench-"))
    env = dict(os.environ)
    model_id = args.model_id
    if args.model:
        folder = work / "cache" / "bench-model" / "1"
        folder.mkdir(parents=True)
        shutil.copy(args.model, folder / "weights.onnx")
        env["MODEL_CACHE_DIR"], model_id = str(work / "cache"), "bench-model/1"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    report: dict[str, Any] = {"model_id": model_id, "video": args.video, "load_before": os.getloadavg()}
    frames = read_frames(args.video, args.frames)
    report["frame_size"] = [frames[0].shape[1], frames[0].shape[0]]
    bodies = []
    for frame in frames:
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        value = base64.b64encode(jpeg).decode("ascii")
        body = {"model_id": model_id, "image": {"type": "base64", "value": value}}
        bodies.append(json.dumps({**body, "confidence": CONFIDENCE, "iou_threshold": IOU}).encode())
    report["jpeg_kb_mean"] = round(statistics.mean(len(b) for b in bodies) * 3 / 4 / 1024, 1)

    command = [sys.executable, __file__, "--ceiling-only", "--video", args.video, "--model-id", model_id]
    command += ["--frames", str(args.frames), "--requests", str(args.requests)]

    def measure_ceiling() -> dict[str, Any]:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, check=True)
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    report["ceiling_before"] = measure_ceiling()  # before and after: the machine's load may change
    process, pid, url = None, args.server_pid, args.url
    try:
        if url is None:
            process, url = start_server(env)
            pid = process.pid
        report["server_rss_idle_mb"] = rss_mb(pid) if pid else None
        warm = load(url, bodies, 2, 8)  # loads the model, warms the session
        if warm["errors"]:
            raise SystemExit(f"the server refused the warm-up requests: {warm['statuses']}")
        report["server_rss_loaded_mb"] = rss_mb(pid) if pid else None
        report["runs"] = []
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            before = batch_stats(url)
            with RssSampler(pid) as sampler:
                result = load(url, bodies, concurrency, args.requests)
            result["batches"] = batches_between(before, batch_stats(url), model_id)
            result["server_peak_rss_mb"] = round(sampler.peak, 1) if pid else None
            report["runs"].append(result)
            print(json.dumps(result), flush=True)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    report["ceiling_after"] = measure_ceiling()
    before, after = report["ceiling_before"], report["ceiling_after"]
    report["ceiling"] = before if before["rps"] >= after["rps"] else after  # the better of the two
    best = report["ceiling"]["rps"]
    for run in report["runs"]:
        run["ratio_to_ceiling"] = round(run["rps"] / best, 3) if best else None
    first = report["runs"][0]
    if first["concurrency"] == 1:
        report["p95_c1_vs_infer"] = round(first["p95_ms"] / report["ceiling"]["infer_p95_ms"], 3)
    report["load_after"] = os.getloadavg()
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
