"""ONNX Runtime sessions on the best execution provider that really works here.

``onnxruntime-gpu`` lists CUDA and TensorRT as available even on a machine with no NVIDIA driver,
and then logs an error and falls back to CPU when a session is made. framepipe probes instead of
trusting the list: it skips GPU providers when the driver library is missing, creates the
session, checks which provider it actually got, and logs one line saying so.

Order tried: TensorRT, CUDA, OpenVINO, CoreML, DirectML, then CPU. ``providers=`` or Roboflow's
``ONNXRUNTIME_EXECUTION_PROVIDERS`` (``[CUDAExecutionProvider,CPUExecutionProvider]``) change it;
``REQUIRED_ONNX_PROVIDERS`` (comma list) names providers whose absence is an error.

Example:
    >>> from framepipe.models.session import create_session
    >>> from framepipe.artifacts import resolve_model
    >>> session = create_session(resolve_model("framepipe-shapes/1").weights_path)
    >>> session.get_providers()[-1]
    'CPUExecutionProvider'
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framepipe.errors import ExecutionProviderError, ModelLoadError

if TYPE_CHECKING:
    import onnxruntime

logger = logging.getLogger("framepipe.models")

PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)
_NVIDIA = {"TensorrtExecutionProvider", "CUDAExecutionProvider"}
_OPTIMISATION = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED"}


@dataclass(frozen=True)
class SessionSettings:
    """How sessions are made.

    ``intra_op_threads``: ONNX Runtime's threads per session (``None``: its default, all cores).
    ``optimisation``: graph optimisation level, ``"disable"``, ``"basic"``, ``"extended"`` or
    ``"all"``. ``spinning``: whether idle intra-op threads spin waiting for work (``None``:
    ONNX Runtime's default, on). ``tensorrt_cache``: folder for TensorRT engines (``None``: ``tensorrt_cache`` next
    to the weights, or in the user cache when that folder is not writable); TensorRT builds an
    engine on the first run, which takes minutes, and reuses it from there.
    """

    intra_op_threads: int | None = None
    optimisation: str = "all"
    tensorrt_cache: str | None = None
    tensorrt_fp16: bool = True
    spinning: bool | None = None

    def __post_init__(self) -> None:
        if self.optimisation not in (*_OPTIMISATION, "all"):
            raise ValueError(f"optimisation must be one of {[*_OPTIMISATION, 'all']}, got {self.optimisation!r}")
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be at least 1, got {self.intra_op_threads}")


def parse_providers(text: str) -> list[str]:
    """Read Roboflow's ``ONNXRUNTIME_EXECUTION_PROVIDERS`` syntax: ``[A,B]``, quotes and spaces
    optional."""
    cleaned = text.strip().strip("[]")
    return [p.strip().strip("'\"") for p in cleaned.split(",") if p.strip().strip("'\"")]


def nvidia_driver_missing() -> str | None:
    """Why CUDA cannot work here, or ``None`` when the driver library loads."""
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            ctypes.CDLL(name)
            return None
        except OSError:
            continue
    return f"no NVIDIA driver ({names[0]} not found)"


def _session_options(settings: SessionSettings) -> onnxruntime.SessionOptions:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # measured with two workers on one session: the same speed, 30 MB less memory without it
    options.enable_mem_pattern = False
    if settings.intra_op_threads:
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = 1
    if settings.spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
    level = _OPTIMISATION.get(settings.optimisation, "ORT_ENABLE_ALL")
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return options


def _tensorrt_options(weights: Path, settings: SessionSettings) -> dict[str, Any]:
    folder = Path(settings.tensorrt_cache) if settings.tensorrt_cache else weights.parent / "tensorrt_cache"
    if settings.tensorrt_cache is None and not os.access(weights.parent, os.W_OK):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = (
            Path(base) / "framepipe" / "tensorrt" / hashlib.sha256(str(weights.resolve()).encode()).hexdigest()[:16]
        )
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("TensorRT engines are cached in %s (the first run builds one and can take minutes)", folder)
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(folder),
        "trt_fp16_enable": settings.tensorrt_fp16,
    }


def create_session(
    weights: str | os.PathLike[str],
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
    settings: SessionSettings | None = None,
) -> onnxruntime.InferenceSession:
    """Open ``weights`` on the first provider of ``providers`` (or of the preferred order, or of
    ``$ONNXRUNTIME_EXECUTION_PROVIDERS``) that works here, always ending on CPU.

    Providers given explicitly must all be usable except CPU: one that is not installed or cannot
    start raises ``ExecutionProviderError``. Providers from the default order are tried quietly,
    and the log says which one was chosen and why the ones before it were skipped.
    """
    import onnxruntime as ort

    settings = settings or SessionSettings()
    if intra_op_threads is not None:
        settings = replace(settings, intra_op_threads=intra_op_threads)
    path = Path(weights)
    if not path.is_file():
        raise ModelLoadError(f"weights file {path} does not exist")
    available = set(ort.get_available_providers())
    required = parse_providers(os.environ.get("REQUIRED_ONNX_PROVIDERS", ""))
    missing = [p for p in required if p not in available]
    if missing:
        raise ExecutionProviderError(
            f"REQUIRED_ONNX_PROVIDERS names {missing}, which this onnxruntime build lacks (it has {sorted(available)})"
        )
    explicit = providers is not None
    if providers is None and os.environ.get("ONNXRUNTIME_EXECUTION_PROVIDERS"):
        providers = parse_providers(os.environ["ONNXRUNTIME_EXECUTION_PROVIDERS"])
    wanted = list(providers) if providers is not None else list(PREFERRED_PROVIDERS)
    skipped: list[str] = []
    driver_problem = nvidia_driver_missing() if _NVIDIA & set(wanted) & available else None
    for name in wanted:
        if name == "CPUExecutionProvider":
            break
        if name not in available:
            if explicit:
                raise ExecutionProviderError(
                    f"execution provider {name} was asked for but this onnxruntime build does not have it "
                    f"(it has {', '.join(sorted(available))})"
                )
            continue  # not in this build: nothing worth logging
        reason = driver_problem if name in _NVIDIA else None
        if reason is None:
            session, reason = _try_provider(path, name, settings)
            if session is not None:
                _log_choice(name, skipped)
                return session
        if explicit or name in required:
            raise ExecutionProviderError(f"execution provider {name} was asked for but cannot run: {reason}")
        skipped.append(f"{name}: {reason}")
    session = _open(path, ["CPUExecutionProvider"], settings)
    _log_choice("CPUExecutionProvider", skipped)
    return session


def _open(path: Path, providers: list[Any], settings: SessionSettings) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), sess_options=_session_options(settings), providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types from C++
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"ONNX Runtime could not load {path}: {message}") from error


def _try_provider(
    path: Path, name: str, settings: SessionSettings
) -> tuple[onnxruntime.InferenceSession | None, str | None]:
    import onnxruntime as ort

    provider: Any = (name, _tensorrt_options(path, settings)) if name == "TensorrtExecutionProvider" else name
    ort.set_default_logger_severity(4)  # a provider that fails to load must not spray errors
    try:
        session = _open(path, [provider, "CPUExecutionProvider"], settings)
    except ModelLoadError as error:
        return None, str(error)
    finally:
        ort.set_default_logger_severity(2)
    if session.get_providers()[0] != name:
        return None, "failed to start (its libraries are missing or incompatible)"
    return session, None


def _log_choice(name: str, skipped: list[str]) -> None:
    if skipped:
        logger.info("ONNX Runtime runs on %s (skipped %s)", name, "; ".join(skipped))
    else:
        logger.info("ONNX Runtime runs on %s", name)


def gpu_usable() -> bool:
    """Whether onnxruntime has a CUDA provider and an NVIDIA driver is present."""
    import onnxruntime as ort

    providers = set(ort.get_available_providers())
    return bool(providers & _NVIDIA) and nvidia_driver_missing() is None


@dataclass(frozen=True)
class RuntimePlan:
    """How this process runs its models, chosen once (``runtime_plan``): ONNX Runtime's
    ``intra_op_threads`` per session, whether idle threads ``spin``, and how many batches each
    model keeps in flight (``slots``)."""

    intra_op_threads: int | None
    spinning: bool | None
    slots: int
    reason: str

    def settings(self) -> SessionSettings:
        return SessionSettings(intra_op_threads=self.intra_op_threads, spinning=self.spinning)


_PLAN: RuntimePlan | None = None
_PLAN_LOCK = threading.Lock()


def plan_runtime(
    workload: str | None = None,
    cpu_count: int | None = None,
    gpu: bool | None = None,
    intra_op_threads: int | None = None,
) -> RuntimePlan:
    """The plan for ``workload``, without choosing it.

    ``"throughput"`` (files, servers): two batches in flight, each session run on half of the
    cores (on 2 cores one thread each, which has no thread pool to spin: two single-threaded runs
    side by side were the fastest way through a file, 15.6 frames/s against 13.4 for two runs on
    a 2-thread pool). ``"latency"`` (live cameras, the default): every core on each run, spinning
    off (an idle camera's spinning pool burnt about four times the CPU the work needed), two slots.
    On a GPU: ONNX Runtime's threads, two slots, so one batch is prepared while the other runs.

    Example:
        >>> files = plan_runtime("throughput", cpu_count=8, gpu=False)
        >>> live = plan_runtime("latency", cpu_count=8, gpu=False)
        >>> (files.intra_op_threads, files.slots), (live.intra_op_threads, live.spinning)
        ((4, 2), (8, False))
    """
    if workload not in (None, "latency", "throughput"):
        raise ValueError(f"workload must be 'latency' or 'throughput', got {workload!r}")
    cores = cpu_count or os.cpu_count() or 1
    on_gpu = gpu_usable() if gpu is None else gpu
    if on_gpu:
        return RuntimePlan(intra_op_threads, None, 2, "GPU: ONNX Runtime's CPU threads, two batches in flight")
    if intra_op_threads is not None:
        return RuntimePlan(intra_op_threads, False, max(cores // intra_op_threads, 1) if cores > 1 else 1, "asked for")
    if workload == "throughput" and cores >= 2:
        return RuntimePlan(
            max(cores // 2, 1), None, 2, f"throughput on {cores} cores: 2 runs, {cores // 2} threads each"
        )
    return RuntimePlan(cores, False, 2, f"latency on {cores} cores: every core on each run, no spinning")


def runtime_plan(workload: str | None = None, intra_op_threads: int | None = None) -> RuntimePlan:
    """This process's plan: chosen by the first call (from the cores, a GPU and the first
    caller's ``workload``) and the same for every later one, so that every caller of a model
    shares one session. ``configure_runtime`` chooses it explicitly."""
    global _PLAN
    with _PLAN_LOCK:
        if _PLAN is None:
            _PLAN = plan_runtime(workload, intra_op_threads=intra_op_threads)
            logger.info(
                "ONNX Runtime plan for this process: %s threads per run, spinning %s, %d batches in flight (%s)",
                _PLAN.intra_op_threads or "default",
                {None: "default", True: "on", False: "off"}[_PLAN.spinning],
                _PLAN.slots,
                _PLAN.reason,
            )
        elif (workload, intra_op_threads) != (None, None):
            logger.debug(
                "ONNX Runtime plan already chosen (%s); %s / %s ignored", _PLAN.reason, workload, intra_op_threads
            )
        return _PLAN


def configure_runtime(intra_op_threads: int | None = None, spinning: bool | None = None, slots: int = 2) -> RuntimePlan:
    """Choose this process's plan explicitly, before any model loads (models loaded earlier keep
    their sessions)."""
    global _PLAN
    if slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots}")
    with _PLAN_LOCK:
        _PLAN = RuntimePlan(intra_op_threads, spinning, slots, "configure_runtime")
        return _PLAN


def reset_runtime_plan() -> None:
    """Forget the plan, so the next load chooses again (for tests)."""
    global _PLAN
    with _PLAN_LOCK:
        _PLAN = None


class DeviceBinding:
    """ONNX Runtime's IOBinding for one executor slot, made once: an input buffer on the device
    per batch shape, reused (``update_inplace`` copies the batch in; no fresh binding and buffer per
    call), outputs bound on the device and copied back once. On a CPU build ``device`` is
    ``"cpu"``, so the same code runs here as on CUDA."""

    def __init__(self, session: Any, input_name: str, output_names: Sequence[str], device: str = "cpu") -> None:
        self.device = device
        self._session = session
        self._input_name = input_name
        self._output_names = list(output_names)
        self._binding = session.io_binding()
        self._inputs: dict[tuple[tuple[int, ...], str], Any] = {}
        self._bound: tuple[tuple[int, ...], str] | None = None

    def run(self, batch: Any) -> list[Any]:
        import numpy as np
        import onnxruntime as ort

        array = np.ascontiguousarray(batch)
        key = (tuple(array.shape), array.dtype.str)
        value = self._inputs.get(key)
        if value is None:
            value = self._inputs[key] = ort.OrtValue.ortvalue_from_shape_and_type(
                array.shape, array.dtype, self.device, 0
            )
        value.update_inplace(array)
        if self._bound != key:
            self._binding.bind_ortvalue_input(self._input_name, value)
            self._bound = key
        for name in self._output_names:  # ONNX Runtime allocates the outputs on the device
            self._binding.bind_output(name, self.device)
        self._session.run_with_iobinding(self._binding)
        return list(self._binding.copy_outputs_to_cpu())

    @property
    def buffers(self) -> int:
        """How many device input buffers this slot holds (one per batch shape seen)."""
        return len(self._inputs)


def binding_device(provider: str) -> str:
    """The IOBinding device for an execution provider."""
    return "cuda" if provider in _NVIDIA else "cpu"


def onnx_metadata(weights: str | os.PathLike[str]) -> dict[str, str]:
    """The custom metadata of an ONNX file (Ultralytics writes ``names``, ``imgsz``, ``task``)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types from C++
        raise ModelLoadError(f"{weights} is not an ONNX model onnxruntime can read: {error}") from None
    return dict(session.get_modelmeta().custom_metadata_map)
