"""``framepipe run MODEL SOURCE...``: the pipeline from the command line.

Sinks (``--sink``, repeatable): ``display`` (a window, tiled for several sources),
``video:PATH`` (annotated H.264 MP4), ``jsonl:PATH`` (one JSON object per frame),
``udp:HOST:PORT`` (Roboflow's UDP messages), ``preview:PORT`` (MJPEG in a browser at
``http://127.0.0.1:PORT/``), ``memory[:N]``: the spec strings of ``framepipe.sinks.registry``.
``--tracker bytetrack|sort`` adds tracker ids. Files get a progress bar; live streams a status
line with fps, latency and drops every second. Ctrl-C stops cleanly and finishes every file.

Example::

    framepipe run framepipe-shapes/1 clip.mp4 --sink video:annotated.mp4 --sink jsonl:out.jsonl
    framepipe run my-model/3 rtsp://cam/stream --sink display --metrics-port 9090
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from framepipe.errors import FramepipeError

logger = logging.getLogger("framepipe.run")

if TYPE_CHECKING:
    from framepipe.sinks import MultiSink


class CommandError(FramepipeError):
    """A command-line argument that cannot be used."""


def add_command(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run a model over videos, streams or cameras",
        description="Run MODEL (an id such as framepipe-shapes/1, a model folder or an .onnx file) over each SOURCE "
        "(a file, an rtsp:// or http(s):// URL, or a webcam index) and send the results to the sinks.",
    )
    run.add_argument("model")
    run.add_argument("sources", nargs="+", metavar="SOURCE")
    run.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="SINK",
        help="display | video:PATH | jsonl:PATH | udp:HOST:PORT | preview:PORT (repeat for several)",
    )
    run.add_argument("--tracker", choices=["bytetrack", "sort"], help="track objects, one tracker per source")
    run.add_argument("--max-fps", type=float, help="at most this many batches per second")
    run.add_argument("--confidence", type=float, help="confidence threshold (default 0.4)")
    run.add_argument("--iou-threshold", type=float, help="NMS IoU threshold (default 0.3)")
    run.add_argument("--workers", type=int, help="inference workers (default: 2 on CPU)")
    run.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on 127.0.0.1:PORT")
    run.add_argument("--quiet", action="store_true", help="no progress bar or status line")
    run.set_defaults(handler=execute)


def _source(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def _build_sinks(specs: list[str], several_sources: bool) -> MultiSink:
    """The sinks named on the command line (``framepipe.sinks.registry``), owned by one
    ``MultiSink``: a failing sink does not stop the others, and every one is released."""
    from framepipe.sinks import MultiSink
    from framepipe.sinks.registry import build_sink, parse_sink_spec

    for spec in specs:
        parse_sink_spec(spec)  # every spec checked before any file is opened
    built: list[Any] = []
    try:
        for spec in specs:
            sink = built_sink = build_sink(spec)
            owner = getattr(getattr(built_sink, "function", None), "__self__", None)
            if spec.startswith("preview:") and owner is not None:
                print(f"preview at {owner.url}", file=sys.stderr, flush=True)
            built.append(sink)
    except BaseException:
        MultiSink(built).release()
        raise
    if several_sources and not built:
        logger.info("no --sink given: results are counted, not kept")
    return MultiSink(built, names=specs)


def _tracker_factory(name: str | None) -> Any:
    if name is None:
        return None
    try:
        import trackers
    except ImportError as error:
        raise CommandError("--tracker needs the trackers package: pip install 'framepipe[tracking]'") from error
    if name == "sort":
        return trackers.SORTTracker
    return lambda: trackers.ByteTrackTracker(track_activation_threshold=0.5)


def _probe(sources: list[str | int]) -> tuple[int | None, float]:
    """Total frames when every source is a file (else ``None``), and the first source's fps."""
    from framepipe.sources import open_reader

    total, fps = 0, 30.0
    for index, reference in enumerate(sources):
        if not isinstance(reference, str) or "://" in reference:
            return None, fps
        reader = open_reader(reference)
        try:
            total += reader.properties.total_frames
            if index == 0 and reader.properties.fps:
                fps = reader.properties.fps
        finally:
            reader.close()
    return total or None, fps


def execute(args: argparse.Namespace) -> int:
    from framepipe.pipeline import InferencePipeline

    sources = [_source(s) for s in args.sources]
    total, _ = _probe(sources)
    sinks = _build_sinks(args.sink, len(sources) > 1)
    try:
        pipeline = InferencePipeline.init(
            [s for s in sources] if len(sources) > 1 else sources[0],
            args.model,
            sinks,
            max_fps=args.max_fps,
            confidence=args.confidence,
            iou_threshold=args.iou_threshold,
            inference_workers=args.workers,
            metrics_port=args.metrics_port,
            tracker=_tracker_factory(args.tracker),
        )
    except BaseException:
        sinks.release()
        raise
    started = time.monotonic()
    bar: Any = None
    interrupted = False
    with _InterruptFlag() as stop:
        try:
            pipeline.start(use_main_thread=False)
            if not args.quiet and total is not None:
                from tqdm import tqdm

                bar = tqdm(total=total, unit="frame", desc="framepipe", dynamic_ncols=True)
            last_line = time.monotonic()
            while pipeline.is_running() and not stop.requested:
                time.sleep(0.2)
                if bar is not None:
                    bar.update(pipeline.frames_dispatched - bar.n)
                elif not args.quiet and time.monotonic() - last_line >= 1.0:
                    last_line = time.monotonic()
                    print(_status_line(pipeline), file=sys.stderr, flush=True)
        except KeyboardInterrupt:  # Ctrl-C where no flag was installed (not the main thread)
            interrupted = True
        finally:
            interrupted = interrupted or stop.requested
            if interrupted:
                print("\nstopping... (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
                pipeline.terminate()
            pipeline.join()  # releases the sinks: every file is finished
            if bar is not None:
                bar.update(pipeline.frames_dispatched - bar.n)
                bar.close()
    elapsed = max(time.monotonic() - started, 1e-9)
    print(_summary(pipeline, pipeline.frames_dispatched, elapsed))
    if pipeline.inference_error is not None:
        raise pipeline.inference_error
    return 130 if interrupted else 0


class _InterruptFlag:
    """Ctrl-C (SIGINT) sets ``requested`` instead of raising ``KeyboardInterrupt`` wherever the
    main thread happens to be (inside a lock, a progress bar, a join: where an exception can
    leave a lock held and the stop waiting forever); a second Ctrl-C quits at once, exit 130.
    The handler only assigns a flag: it takes no lock the interrupted code may hold."""

    requested = False

    def __enter__(self) -> _InterruptFlag:
        self.previous: Any = None
        # an ignored SIGINT (a job started in the background by a script) stays ignored, as Python keeps it
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            os.write(2, b"\nquitting without finishing the files\n")
            os._exit(130)
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _latency_ms(snapshot: Any, stage: str, quantile: float) -> float | None:
    values = [stages[stage][quantile] for stages in snapshot.latency.values() if stage in stages]
    return max(values) * 1000 if values else None


def _status_line(pipeline: Any) -> str:
    snapshot = pipeline.metrics()
    p50 = _latency_ms(snapshot, "end_to_end", 0.5)
    dropped = sum(c.dropped for c in snapshot.sources.values())
    up = sum(snapshot.sources_up.values())
    latency = f"{p50:.0f} ms" if p50 is not None else "-"
    sources = f"{up}/{len(snapshot.sources)}"
    return f"fps={snapshot.throughput_fps:.1f} latency_p50={latency} dropped={dropped} sources_up={sources}"


def _summary(pipeline: Any, frames: int, elapsed: float) -> str:
    snapshot = pipeline.metrics()
    p50, p95 = _latency_ms(snapshot, "end_to_end", 0.5), _latency_ms(snapshot, "end_to_end", 0.95)
    dropped = sum(c.dropped for c in snapshot.sources.values())
    parts = [f"frames={frames}", f"fps={frames / elapsed:.1f}"]
    if p50 is not None and p95 is not None:
        parts += [f"latency_p50_ms={p50:.1f}", f"latency_p95_ms={p95:.1f}"]
    parts.append(f"dropped={dropped}")
    return " ".join(parts)
