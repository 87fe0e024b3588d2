"""ONNX Runtime sessions on the best execution provider that really works here.

``onnxruntime-gpu`` lists CUDA and TensorRT as available even on a machine with no NVIDIA driver,
and then logs an error and falls back to CPU when a session is made. framepipe probes instead of
trusting the list: it skips GPU providers when the driver library is missing, creates the
session, checks which provider it actually got, and logs one line saying so.

Example:
    >>> from framepipe.models.session import create_session
    >>> from framepipe.artifacts import resolve_model
    >>> session = create_session(resolve_model("framepipe-shapes/1").weights_path)
    >>> session.get_providers()[-1]
    'CPUExecutionProvider'
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Sequence
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


def _session_options(intra_op_threads: int | None) -> onnxruntime.SessionOptions:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def create_session(
    weights: str | os.PathLike[str],
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
) -> onnxruntime.InferenceSession:
    """Open ``weights`` on the first provider of ``providers`` (or of the preferred order, or of
    ``$ONNXRUNTIME_EXECUTION_PROVIDERS``) that works here, always ending on CPU.

    Providers given explicitly must all be usable except CPU: one that is not installed or cannot
    start raises ``ExecutionProviderError``. Providers from the default order are tried quietly,
    and the log says which one was chosen and why the ones before it were skipped.
    """
    import onnxruntime as ort

    path = Path(weights)
    if not path.is_file():
        raise ModelLoadError(f"weights file {path} does not exist")
    explicit = providers is not None
    if providers is None and os.environ.get("ONNXRUNTIME_EXECUTION_PROVIDERS"):
        providers = parse_providers(os.environ["ONNXRUNTIME_EXECUTION_PROVIDERS"])
    wanted = list(providers) if providers is not None else list(PREFERRED_PROVIDERS)
    available = set(ort.get_available_providers())
    skipped: list[str] = []
    driver_problem = nvidia_driver_missing() if _NVIDIA & set(wanted) & available else None
    for name in wanted:
        if name == "CPUExecutionProvider":
            break
        reason = None
        if name not in available:
            if explicit:
                raise ExecutionProviderError(
                    f"execution provider {name} was asked for but this onnxruntime build does not have it "
                    f"(it has {', '.join(sorted(available))})"
                )
            continue  # not in this build: nothing worth logging
        if name in _NVIDIA and driver_problem:
            reason = driver_problem
        if reason is None:
            session, reason = _try_provider(path, name, intra_op_threads)
            if session is not None:
                _log_choice(name, skipped)
                return session
        if explicit:
            raise ExecutionProviderError(f"execution provider {name} was asked for but cannot run: {reason}")
        skipped.append(f"{name}: {reason}")
    session = _open(path, ["CPUExecutionProvider"], intra_op_threads)
    _log_choice("CPUExecutionProvider", skipped)
    return session


def _open(path: Path, providers: list[Any], intra_op_threads: int | None) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), sess_options=_session_options(intra_op_threads), providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types from C++
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"ONNX Runtime could not load {path}: {message}") from error


def _try_provider(
    path: Path, name: str, intra_op_threads: int | None
) -> tuple[onnxruntime.InferenceSession | None, str | None]:
    import onnxruntime as ort

    previous = ort.get_default_logger_severity() if hasattr(ort, "get_default_logger_severity") else 2
    ort.set_default_logger_severity(4)  # a provider that fails to load must not spray errors
    try:
        session = _open(path, [name, "CPUExecutionProvider"], intra_op_threads)
    except ModelLoadError as error:
        return None, str(error)
    finally:
        ort.set_default_logger_severity(previous)
    if session.get_providers()[0] != name:
        return None, "failed to start (its libraries are missing or incompatible)"
    return session, None


def _log_choice(name: str, skipped: list[str]) -> None:
    if skipped:
        logger.info("ONNX Runtime runs on %s (skipped %s)", name, "; ".join(skipped))
    else:
        logger.info("ONNX Runtime runs on %s", name)
