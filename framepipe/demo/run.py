"""``framepipe demo``: make a clip, run a bundled model over it, write the annotated video and
the predictions, and score them against the clip's ground truth.

``task`` picks the model and the clip: ``detect`` (``framepipe-shapes/1``, box precision and
recall), ``segment`` (``framepipe-shapes-seg/1``, also mean mask IoU), ``pose``
(``framepipe-shapes-pose/1``, also PCK@0.1) and ``classify`` (``framepipe-shapes-cls/1`` on a
clip of single-shape scenes, top-1 accuracy); see ``scoring``.

Example:
    >>> from framepipe.demo.run import run_demo
    >>> report = run_demo(seconds=2, out="/tmp/demo", progress=False)  # doctest: +SKIP
    >>> report.frames, report.precision >= 0.9  # doctest: +SKIP
    (60, True)
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from framepipe.demo.clip import make_clip, read_shapes, read_truth
from framepipe.demo.scenes import Shape
from framepipe.demo.scoring import TASKS, make_scorer
from framepipe.pipeline import InferencePipeline
from framepipe.sinks import H264Writer, JsonlSink, render_boxes
from framepipe.sources.entities import VideoFrame

DEMO_MODEL_ID = "framepipe-shapes/1"
TASK_MODEL_IDS = {
    "detect": DEMO_MODEL_ID,
    "segment": "framepipe-shapes-seg/1",
    "classify": "framepipe-shapes-cls/1",
    "pose": "framepipe-shapes-pose/1",
}
"""The bundled model each demo task runs."""
# the classifier's clip: a new single-shape scene every half second, larger shapes
CLIP_OPTIONS: dict[str, dict[str, Any]] = {
    "classify": {"objects": (1, 1), "radius": (0.12, 0.3), "scene_seconds": 0.5},
}


@dataclass(frozen=True)
class DemoReport:
    """What one demo run produced and measured. ``precision``/``recall`` are ``None`` without
    ground truth."""

    out_dir: Path
    video: Path
    annotated: Path
    predictions: Path
    frames: int
    fps: float
    latency_p50_ms: float
    latency_p95_ms: float
    precision: float | None
    recall: float | None
    clip_seconds: float | None
    task: str = "detect"
    figures: dict[str, float] | None = None

    def summary_lines(self) -> list[str]:
        lines = [
            f"frames={self.frames}",
            f"fps={self.fps:.1f}",
            f"latency_p50_ms={self.latency_p50_ms:.1f}",
            f"latency_p95_ms={self.latency_p95_ms:.1f}",
        ]
        if self.figures is not None:
            lines += [f"{name}={value:.3f}" for name, value in self.figures.items()]
        lines += [f"annotated={self.annotated}", f"predictions={self.predictions}"]
        return lines


def _new_out_dir() -> Path:
    base = Path.cwd() / f"framepipe-demo-{datetime.now():%Y%m%d-%H%M%S}"
    candidate, suffix = base, 1
    while candidate.exists():
        suffix += 1
        candidate = Path(f"{base}-{suffix}")
    return candidate


def _probe(path: Path) -> tuple[int, float]:
    """Frame count (0 when unknown) and frame rate of a video file."""
    from framepipe.sources import open_reader

    reader = open_reader(str(path))
    try:
        return reader.properties.total_frames, reader.properties.fps or 30.0
    finally:
        reader.close()


def run_demo(
    video: str | os.PathLike[str] | None = None,
    seconds: float = 10.0,
    out: str | os.PathLike[str] | None = None,
    seed: int = 2024,
    model_id: str | None = None,
    progress: bool = True,
    task: str = "detect",
) -> DemoReport:
    """Run the demo; see the module docstring. ``video`` skips clip making; its ground truth is
    read from the ``.jsonl`` of the same name when there is one. ``model_id`` defaults to the
    task's bundled model."""
    if task not in TASKS:
        raise ValueError(f"unknown demo task {task!r}; known: {', '.join(TASKS)}")
    model_id = model_id or TASK_MODEL_IDS[task]
    out_dir = Path(out) if out is not None else _new_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    clip_seconds = None
    if video is None:
        started = time.perf_counter()
        info = make_clip(out_dir / "clip.mp4", seconds=seconds, seed=seed, **CLIP_OPTIONS.get(task, {}))
        clip_seconds = time.perf_counter() - started
        video_path, truth_path = Path(info.video_path), Path(info.truth_path)
    else:
        video_path = Path(video)
        truth_path = video_path.with_suffix(".jsonl")
    truth = read_truth(truth_path) if truth_path.is_file() else None
    shapes: list[list[Shape]] = []
    if truth is not None and task in ("segment", "pose"):
        shapes = read_shapes(truth_path)  # masks and vertices are drawn from the shapes
    scorer = make_scorer(task)
    annotated_path, predictions_path = out_dir / "annotated.mp4", out_dir / "predictions.jsonl"

    total_frames, source_fps = _probe(video_path)
    latencies: list[float] = []
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_frames or None, unit="frame", desc="framepipe demo", dynamic_ncols=True)
    lock = threading.Lock()

    with H264Writer(annotated_path, fps=source_fps) as writer, JsonlSink(predictions_path) as jsonl:

        def on_prediction(prediction: dict[str, Any], frame: VideoFrame) -> None:
            latencies.append((datetime.now() - frame.frame_timestamp).total_seconds())
            if truth is not None and 0 < frame.frame_id <= len(truth):
                index = frame.frame_id - 1
                with lock:
                    scorer.add(prediction, truth[index], shapes[index] if shapes else [])
            render_boxes(
                prediction,
                frame,
                display_size=None,
                fps_monitor=None,
                on_frame_rendered=lambda item: writer.write(item[1]),
            )
            jsonl.on_prediction(prediction, frame)
            if bar is not None:
                bar.update(1)

        pipeline = InferencePipeline.init(
            video_reference=str(video_path), model_id=model_id, on_prediction=on_prediction
        )
        started = time.perf_counter()
        pipeline.start()
        pipeline.join()
        elapsed = time.perf_counter() - started
    if bar is not None:
        bar.close()
    if pipeline.inference_error is not None:
        raise pipeline.inference_error
    frames = len(latencies)
    figures = scorer.figures() if truth is not None else None
    p50, p95 = (np.percentile(latencies, [50, 95]) * 1000).tolist() if latencies else (0.0, 0.0)
    return DemoReport(
        out_dir=out_dir,
        video=video_path,
        annotated=annotated_path,
        predictions=predictions_path,
        frames=frames,
        fps=frames / elapsed if elapsed > 0 else 0.0,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        precision=figures.get("precision") if figures is not None else None,
        recall=figures.get("recall") if figures is not None else None,
        clip_seconds=clip_seconds,
        task=task,
        figures=figures,
    )
