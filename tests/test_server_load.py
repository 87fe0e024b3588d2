"""A bounded load test of ``framepipe serve`` (a real process on 127.0.0.1): 16 concurrent clients send
real JPEG frames of an H.264 clip for a bounded time (full batches, then 3 s of warm-up, then 10 s measured); no request
fails, none gets a 5xx, and the server's resident memory stays flat over the measured time (growth
under 5 % between its first and last third)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import requests

from tests.helpers import wait_for
from tests.servers import free_port
from tests.test_server_support import clip_frames

CLIENTS = 16
WARM_UP = 3.0  # then 16 clients, unmeasured, until the allocator's arenas settle
SECONDS = 10.0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_sixteen_clients_no_errors_flat_memory(clip: Any) -> None:
    frames = [base64.b64encode(cv2.imencode(".jpg", f)[1].tobytes()).decode() for f in clip_frames(clip.video_path, 8)]
    port = free_port()
    env = {**os.environ, "PRELOAD_MODELS": "framepipe-shapes/1"}
    command = [sys.executable, "-m", "framepipe", "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return requests.get(f"{url}/readiness", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        assert wait_for(ready, 60, 0.1), "the server did not become ready"
        # warm-up 1: full batches in both executor slots, so their buffers and ONNX Runtime's arena reach
        # their largest size now rather than whenever 16 frames first happen to queue together
        full: dict[str, Any] = {
            "model_id": "framepipe-shapes/1",
            "image": [{"type": "base64", "value": f} for f in frames * 2],
        }
        with ThreadPoolExecutor(4) as pool:
            warm = list(
                pool.map(lambda _: requests.post(f"{url}/infer/object_detection", json=full, timeout=60), range(4))
            )
        assert [w.status_code for w in warm] == [200] * 4
        statuses: Counter[int] = Counter()
        failures: list[str] = []
        lock = threading.Lock()
        measure_from = time.monotonic() + WARM_UP
        stop_at = measure_from + SECONDS

        def client(index: int) -> None:
            session = requests.Session()
            n = index
            while time.monotonic() < stop_at:
                payload: dict[str, Any] = {
                    "model_id": "framepipe-shapes/1",
                    "image": {"type": "base64", "value": frames[n % 8]},
                }
                n += 1
                try:
                    answer = session.post(f"{url}/infer/object_detection", json=payload, timeout=30)
                    ok = answer.status_code == 200 and answer.json()["image"] == {"width": 640, "height": 360}
                    with lock:
                        statuses[answer.status_code] += 1
                        if not ok:
                            failures.append(answer.text[:200])
                except requests.RequestException as error:
                    with lock:
                        failures.append(repr(error))

        samples: list[int] = []
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        while time.monotonic() < stop_at:
            if time.monotonic() >= measure_from:
                samples.append(rss_kib(server.pid))
            time.sleep(0.25)
        for thread in threads:
            thread.join(40)
        assert not any(t.is_alive() for t in threads)
        assert not failures, failures[:3]
        assert set(statuses) == {200} and statuses[200] > CLIENTS
        third = len(samples) // 3
        first, last = sum(samples[:third]) / third, sum(samples[-third:]) / third
        growth = (last - first) / first
        print(
            f"requests={statuses[200]} rps={statuses[200] / (WARM_UP + SECONDS):.1f} rss_first={first / 1024:.0f}MiB "
            f"rss_last={last / 1024:.0f}MiB growth={growth * 100:.2f}% peak={max(samples) / 1024:.0f}MiB"
        )
        assert growth < 0.05
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
