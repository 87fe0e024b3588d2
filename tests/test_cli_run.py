"""`framepipe run` as a user runs it: real files in, real files out, Ctrl-C included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import probe_video


def _framepipe(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framepipe", *args], capture_output=True, text=True, timeout=180, check=False, **kwargs
    )


def test_run_writes_every_sink(clip, tmp_path: Path) -> None:
    jsonl, video = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    done = _framepipe(
        "run", "framepipe-shapes/1", clip.video_path, "--sink", f"jsonl:{jsonl}", "--sink", f"video:{video}", "--quiet"
    )
    assert done.returncode == 0, done.stderr
    assert f"frames={clip.frames}" in done.stdout and "dropped=0" in done.stdout
    lines = jsonl.read_text().splitlines()
    assert [json.loads(line)["frame_id"] for line in lines] == list(range(1, clip.frames + 1))
    assert probe_video(video) == ("h264", clip.frames, clip.width, clip.height)


def test_run_two_sources_tiles_the_video(clip, tmp_path: Path) -> None:
    video = tmp_path / "tiles.mp4"
    done = _framepipe(
        "run", "framepipe-shapes/1", clip.video_path, clip.video_path, "--sink", f"video:{video}", "--quiet"
    )
    assert done.returncode == 0, done.stderr
    codec, frames, width, _ = probe_video(video)
    assert codec == "h264" and frames == clip.frames and width > 2 * clip.width


# `python -m framepipe` with Python's own Ctrl-C handling, as a terminal user's process has it, even
# where this test's process inherited an ignored SIGINT (a script's background job)
AT_A_TERMINAL = [
    sys.executable,
    "-c",
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'framepipe'; runpy.run_module('framepipe', run_name='__main__', alter_sys=True)",
]


def _communicate(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """``process.communicate``; a process still running after ``timeout`` gets SIGABRT, so that
    its threads' stacks (``PYTHONFAULTHANDLER``) come back in the failure message."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate(timeout=30)
        raise AssertionError(f"still running {timeout} s after Ctrl-C; its threads:\n{stderr[-20000:]}") from None


def test_ctrl_c_stops_cleanly_and_finishes_files(long_clip, tmp_path: Path) -> None:
    jsonl, video = tmp_path / "partial.jsonl", tmp_path / "partial.mp4"
    process = subprocess.Popen(
        [
            *AT_A_TERMINAL,
            "run",
            "framepipe-shapes/1",
            long_clip.video_path,
            "--max-fps",
            "5",  # 60 s for the whole clip: far longer than it takes to see its first results
            "--sink",
            f"jsonl:{jsonl}",
            "--sink",
            f"video:{video}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and (not jsonl.exists() or jsonl.stat().st_size == 0):
        time.sleep(0.2)
    # no fixed wait: Ctrl-C as soon as results are on disk, while the clip is far from its end
    assert process.poll() is None, f"framepipe run ended before Ctrl-C: {process.communicate()[1]}"
    process.send_signal(signal.SIGINT)
    stdout, stderr = _communicate(process, 30)
    assert process.returncode == 130, stderr
    assert "stopping..." in stderr and "frames=" in stdout
    frames = int(stdout.split("frames=")[1].split()[0])
    assert 0 < frames < long_clip.frames
    lines = jsonl.read_text().splitlines()
    assert len(lines) == frames and all(json.loads(line)["predictions"] is not None for line in lines)
    assert probe_video(video)[:2] == ("h264", frames)


def test_ctrl_c_sets_a_flag_and_a_second_one_quits() -> None:
    """The first Ctrl-C raises nothing where the main thread happens to be (a KeyboardInterrupt
    inside a lock or a join can leave a stop waiting forever): it sets the flag the run loop
    reads. A second one quits at once with 130."""
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from framepipe.commands.run import _InterruptFlag\n"
        "with _InterruptFlag() as stop:\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    print('requested', stop.requested, flush=True)\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    print('still here', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 130 and done.stdout == "requested True\n", (done.stdout, done.stderr)
    assert "quitting without finishing the files" in done.stderr and "Traceback" not in done.stderr
    # outside the block Ctrl-C is Python's KeyboardInterrupt again
    code = code.replace("    signal.raise_signal(signal.SIGINT)\n    print('still here'", "    pass\n    print('x'")
    code += "signal.raise_signal(signal.SIGINT)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert "KeyboardInterrupt" in done.stderr and done.stdout.startswith("requested True"), (done.stdout, done.stderr)
    # an ignored SIGINT (a script's background job) stays ignored
    code = (
        "import signal\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "from framepipe.commands.run import _InterruptFlag\n"
        "with _InterruptFlag() as stop:\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "print('requested', stop.requested, signal.getsignal(signal.SIGINT) == signal.SIG_IGN)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout == "requested False True\n", (done.stdout, done.stderr)


def test_bad_sink_and_missing_source_are_clear_errors(clip, tmp_path: Path) -> None:
    done = _framepipe("run", "framepipe-shapes/1", clip.video_path, "--sink", "printer:lp0")
    assert (
        done.returncode == 2
        and "expected display, video:PATH, jsonl:PATH, udp:HOST:PORT or preview:PORT" in done.stderr
    )
    done = _framepipe("run", "framepipe-shapes/1", str(tmp_path / "gone.mp4"))
    assert done.returncode == 2 and "gone.mp4" in done.stderr and "Traceback" not in done.stderr
