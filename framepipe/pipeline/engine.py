"""The engine: the threads and queues that run a pipeline, with an explicit life cycle.

Threads (all named ``framepipe-*``): one decoder per source fills a bounded buffer; the collector
gathers at most one frame per source into a batch (``collector.py``), taking frames only when an
inference worker is free; the workers run ``on_video_frame`` on batches in parallel; results are
put back in order (``reorder.py``) into the result queue, bounded by count and bytes with a policy
per source (``sink_queue.py``); the dispatcher hands them to the sinks (``dispatch.py``), on the
caller's thread with ``start()`` or its own with ``start(use_main_thread=False)``.

State: ``CREATED`` → ``start()`` → ``RUNNING`` → (every source ended, or ``terminate()``)
``STOPPING`` → ``join()`` → ``ENDED``. A call that the state does not allow raises
``PipelineStateError`` saying why; ``terminate()`` is allowed in every state. ``with`` a pipeline
terminates, joins and releases its sinks on the way out.

Example:
    >>> from framepipe.pipeline.engine import PipelineState
    >>> [state.value for state in PipelineState]
    ['created', 'running', 'stopping', 'ended']
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any

from framepipe.errors import PipelineSinkError, PipelineStateError
from framepipe.events import EventType
from framepipe.pipeline.collector import BatchCollector
from framepipe.pipeline.config import LIVE_BATCH_WINDOW, PipelineConfig, SinkMode
from framepipe.pipeline.dispatch import Dispatcher
from framepipe.pipeline.handlers import InferenceHandler
from framepipe.pipeline.inference_stage import InferenceStage
from framepipe.pipeline.metrics import MetricsSnapshot, PipelineMetrics, prometheus_text
from framepipe.pipeline.sink_queue import SinkQueue
from framepipe.pipeline.sources import each_source, is_live, open_sources, source_up
from framepipe.pipeline.tracking import SourceTrackers
from framepipe.sinks.base import as_sink
from framepipe.sources.entities import StatusUpdate, UpdateSeverity
from framepipe.sources.readers import redact

if TYPE_CHECKING:
    from framepipe.pipeline.metrics_server import MetricsServer

__all__ = ["PipelineEngine", "PipelineState"]

logger = logging.getLogger("framepipe.pipeline")


class PipelineState(str, Enum):
    """Where a pipeline is in its life."""

    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    ENDED = "ended"


class PipelineEngine:
    """Runs ``on_video_frame`` over ``sources`` and hands the results to ``on_prediction``."""

    def __init__(
        self,
        sources: Sequence[Any],
        on_video_frame: InferenceHandler,
        on_prediction: Callable[[Any, Any], None] | None,
        config: PipelineConfig | None = None,
        *,
        on_pipeline_start: Callable[[], None] | None = None,
        on_pipeline_end: Callable[[], None] | None = None,
        status_update_handlers: Sequence[Callable[[StatusUpdate], None]] = (),
        watchdog: Any = None,
    ) -> None:
        self.config = config = config or PipelineConfig()
        self._sources = list(sources)
        self._on_video_frame = on_video_frame
        self._on_pipeline_start, self._on_pipeline_end = on_pipeline_start, on_pipeline_end
        self._held: list[Callable[[], None]] = []
        self._handlers = list(status_update_handlers)
        self._watchdog = watchdog
        self._live_ids = {
            s.source_id
            for s in self._sources
            if is_live(s.reference, getattr(getattr(s, "options", None), "realtime", False))
        }
        batching = config.batching
        self._window = batching.window if batching.window is not None or not self._live_ids else LIVE_BATCH_WINDOW
        self._workers_count = max(int(batching.inference_workers), 1)
        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._state = PipelineState.CREATED
        self._collector = BatchCollector(
            self._sources,
            window=self._window,
            max_batch_size=batching.max_batch_size or len(self._sources),
            stop=self._stop,
            producing=source_up,
            on_end=self._source_ended,
        )
        ids = [s.source_id for s in self._sources]
        policies = config.sink_queue.policies(self._live_ids, ids)
        self._new_queue = lambda: SinkQueue(
            config.sink_queue.size, max_bytes=config.sink_queue.max_bytes, policies=policies
        )
        self._results = self._new_queue()
        self._threads: list[threading.Thread] = []
        self._dispatch_thread: threading.Thread | None = None
        self._metrics_server: MetricsServer | None = None
        self._sink = as_sink(on_prediction) if on_prediction is not None else None
        self.metrics_store = PipelineMetrics()
        trackers = SourceTrackers(config.tracking.factory) if config.tracking.factory is not None else None
        self._trackers = trackers
        mode = config.dispatch.sink_mode
        self._dispatcher = Dispatcher(
            self._sink,
            sources=len(self._sources),
            batch_mode=mode is SinkMode.BATCH or (mode is SinkMode.ADAPTIVE and len(self._sources) > 1),
            threaded=bool(self._live_ids),
            queue_factory=self._new_queue,
            metrics=self.metrics_store,
            emit=self._emit,
            stop=self._stop,
            on_fatal=self._sink_fatal if config.dispatch.stop_on_sink_error else None,
            trackers=trackers,
            error_log_interval=config.dispatch.error_log_interval,
        )
        self._stage = InferenceStage(
            self._collector,
            on_video_frame,
            self._results,
            workers=self._workers_count,
            live_ids=self._live_ids,
            max_fps=batching.max_fps,
            metrics=self.metrics_store,
            emit=self._emit,
            fail=self._fail,
            stop=self._stop,
            watchdog=watchdog,
        )
        self.inference_error: BaseException | None = None
        self.sink_error: BaseException | None = None
        if trackers is not None:
            for source in self._sources:
                if hasattr(source, "add_status_handler"):
                    source.add_status_handler(self._reset_tracker_on_reconnect)

    # -- what it is --------------------------------------------------------------------------------
    @property
    def state(self) -> PipelineState:
        return self._state

    @property
    def sources(self) -> list[Any]:
        return list(self._sources)

    @property
    def inference_workers(self) -> int:
        return self._workers_count

    @property
    def frames_dispatched(self) -> int:
        """Frames handed to every sink."""
        return self._dispatcher.frames_dispatched

    @property
    def dispatch_errors(self) -> int:
        """Sink calls that raised."""
        return self._dispatcher.errors

    @property
    def frames_inferred(self) -> int:
        """Frames that went through ``on_video_frame``."""
        return self._stage.frames_inferred

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port`` of the metrics endpoint while it runs."""
        return self._metrics_server.url if self._metrics_server is not None else None

    def is_running(self) -> bool:
        """Whether any pipeline thread (collector, workers, dispatcher) is still working."""
        return any(t is not None and t.is_alive() for t in [*self._threads, self._dispatch_thread])

    # -- life cycle --------------------------------------------------------------------------------
    def start(self, use_main_thread: bool = True) -> None:
        """Open every source, in parallel (errors such as ``InvalidVideoError`` raise here), start
        decoding and inference, then dispatch results: on this thread until the end with
        ``use_main_thread``, else on a background thread (and return at once)."""
        with self._state_lock:
            if self._state is not PipelineState.CREATED:
                raise PipelineStateError(
                    f"start() on a pipeline that is {self._state.value}: a pipeline runs once; build a new one"
                )
            self._state = PipelineState.RUNNING
        try:
            open_sources(self._sources)
            if self.config.metrics.port is not None:
                from framepipe.pipeline.metrics_server import MetricsServer  # http.server only when asked

                self._metrics_server = MetricsServer(
                    lambda: prometheus_text(self.metrics(), self.metrics_store),
                    self.health,
                    self.config.metrics.port,
                    self.config.metrics.host,
                )
                self._metrics_server.start()
        except BaseException:
            for source in self._sources:
                source.terminate(wait=True)
            with self._state_lock:  # join() still ends it: on_pipeline_end, sinks released
                self._state = PipelineState.STOPPING
            self._stop.set()
            raise
        self._emit(EventType.INFERENCE_THREAD_STARTED, UpdateSeverity.INFO)
        self._threads = self._stage.threads()
        for thread in self._threads:
            thread.start()
        try:
            if self._on_pipeline_start is not None:
                self._on_pipeline_start()
            if use_main_thread:
                self._dispatch_loop()
                return
        except BaseException:  # Ctrl-C on the dispatching thread, or a failing on_pipeline_start
            self.terminate()
            raise
        self._dispatch_thread = threading.Thread(target=self._dispatch_loop, name="framepipe-dispatch")
        self._dispatch_thread.start()

    def terminate(self) -> None:
        """Stop everything soon: sources stop decoding, queued frames and results are dropped.
        Returns at once; safe to call twice, in any state and from inside ``on_prediction``."""
        with self._state_lock:
            never_started = self._state is PipelineState.CREATED
            if self._state is PipelineState.RUNNING:
                self._state = PipelineState.STOPPING
            elif never_started:
                self._state = PipelineState.ENDED
        self._stop.set()
        self._collector.wake()
        for source in self._sources:
            source.terminate(wait=False)
        self._stage.drain_batches()
        self._results.clear()
        self._results.close()
        self._dispatcher.clear()
        if never_started:
            self._release_held()
            self._release_sink()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the pipeline to finish (end of every source, or ``terminate()``), then call
        ``on_pipeline_end`` and release the sinks. Raises ``PipelineSinkError`` when
        ``stop_on_sink_error`` stopped it, and ``PipelineStateError`` before ``start()``."""
        if self._state is PipelineState.CREATED:
            raise PipelineStateError("join() before start(): there is nothing to wait for yet; call start() first")
        current = threading.current_thread()
        if current is self._dispatch_thread or current in self._threads:
            raise PipelineStateError(
                "join() called from a pipeline thread (e.g. inside on_prediction) would wait forever"
            )
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(deadline - time.monotonic(), 0.0)

        for thread in [*self._threads, self._dispatch_thread]:
            if thread is not None:
                thread.join(left())
        for source in self._sources:
            # a decoder blocked on a stalled network read ends by itself within its read timeout
            source.join(left() if not self._stop.is_set() else min(left() or 1.0, 1.0))
        with self._state_lock:
            if self.is_running() or self._state is PipelineState.ENDED:
                return
            self._state = PipelineState.ENDED
        if self._metrics_server is not None:
            self._metrics_server.stop()
        self._release_held()
        if self._on_pipeline_end is not None:
            self._on_pipeline_end()
        self._release_sink()
        if self.sink_error is not None and self.config.dispatch.stop_on_sink_error:
            raise PipelineSinkError(f"on_prediction raised and stop_on_sink_error is set: {self.sink_error}") from (
                self.sink_error
            )

    def __enter__(self) -> PipelineEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        started = self._state is not PipelineState.CREATED
        self.terminate()
        if started:
            self.join()

    def hold_until_end(self, release: Callable[[], None]) -> None:
        """Call ``release()`` once when the pipeline ends (e.g. give back the model it holds)."""
        self._held.append(release)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for release in held:
            try:
                release()
            except Exception:
                logger.exception("releasing what the pipeline held failed")

    def _release_sink(self) -> None:
        if not self.config.dispatch.release_sinks or self._sink is None:
            return
        try:
            self._sink.release()
        except Exception:
            logger.exception("releasing the sink failed")

    # -- per-source control (Roboflow's names) -----------------------------------------------------
    def pause_stream(self, source_id: int | None = None) -> None:
        """Stop decoding ``source_id`` (all sources when ``None``) until ``resume_stream``."""
        each_source(self._sources, source_id, "pause")

    def mute_stream(self, source_id: int | None = None) -> None:
        """Keep decoding ``source_id`` but drop every frame until ``resume_stream``."""
        each_source(self._sources, source_id, "mute")

    def resume_stream(self, source_id: int | None = None) -> None:
        """Undo ``pause_stream`` / ``mute_stream``."""
        each_source(self._sources, source_id, "resume")

    # -- status and metrics ------------------------------------------------------------------------
    def _emit(self, event_type: EventType, severity: UpdateSeverity, **payload: Any) -> None:
        update = StatusUpdate(datetime.now(), severity, event_type, payload, "inference_pipeline")
        for handler in self._handlers:
            try:
                handler(update)
            except Exception:
                logger.warning("status update handler failed on %s", event_type, exc_info=True)

    def _running(self) -> bool:
        return any(t.is_alive() for t in self._threads) and not self._stop.is_set()

    def metrics(self) -> MetricsSnapshot:
        """Counters and latencies so far: per source captured / processed / dispatched / dropped,
        and per stage (queue, batch, inference, sink, end to end) p50 / p95 / p99."""
        queues = [self._results, *self._dispatcher.queues]
        for source in self._sources:
            counters = self.metrics_store.counters(source.source_id)
            counters.captured = source.frames_decoded
            counters.dropped_by_source = source.frames_dropped
            counters.dropped_by_sink_queue = sum(q.dropped.get(source.source_id, 0) for q in queues)
        snapshot = self.metrics_store.snapshot(
            {s.source_id: self._running() and source_up(s) for s in self._sources},
            self._workers_count,
            len(self._results),
        )
        snapshot.extra["sink_queue_bytes"] = sum(q.queued_bytes for q in queues)
        return snapshot

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the pipeline runs and at least one source is up."""
        up = {str(s.source_id): self._running() and source_up(s) for s in self._sources}
        return any(up.values()), {"sources_up": up, "running": self._running()}

    def _source_ended(self, source: Any) -> None:
        if source.error is not None:
            logger.error("source %s ended with an error: %s", source.source_id, source.error)

    def _fail(self, error: BaseException, context: str) -> None:
        if self.inference_error is None:
            self.inference_error = error
        logger.error("%s failed; the pipeline stops: %s", context, error, exc_info=error)
        self._emit(
            EventType.INFERENCE_ERROR,
            UpdateSeverity.ERROR,
            error_type=type(error).__name__,
            error_message=str(error),
            error_context=context,
        )
        self.terminate()

    # -- dispatch ----------------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        try:
            self._dispatcher.run(self._results, lambda: any(t.is_alive() for t in self._threads))
        finally:
            with self._state_lock:
                if self._state is PipelineState.RUNNING:
                    self._state = PipelineState.STOPPING
            self._stop.set()
            self._collector.wake()
            for source in self._sources:
                source.terminate(wait=False)

    def _sink_fatal(self, error: BaseException) -> None:
        if self.sink_error is None:
            self.sink_error = error
        self.terminate()

    def _reset_tracker_on_reconnect(self, update: StatusUpdate) -> None:
        if update.event_type == EventType.CONNECTED and self._trackers is not None:
            source_id, first = update.payload.get("source_id"), update.payload.get("next_frame_id", 0)
            if isinstance(source_id, int):
                self._trackers.reset(source_id, from_frame_id=int(first))

    def __repr__(self) -> str:
        references = ", ".join(redact(s.reference) for s in self._sources)
        return (
            f"{type(self).__name__}(sources=[{references}], workers={self._workers_count}, state={self._state.value})"
        )
