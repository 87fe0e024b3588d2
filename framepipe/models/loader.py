"""Loading a model by id: find its files, open a session on the best provider, wrap it, and keep
one copy per process.

Example:
    >>> from framepipe.models import get_model
    >>> get_model("framepipe-shapes/1").class_names
    ['circle', 'square', 'triangle', 'star']
"""

from __future__ import annotations

from collections.abc import Sequence

from framepipe.artifacts import resolve_model
from framepipe.errors import ModelArtifactError
from framepipe.models.base import Model
from framepipe.models.manager import ModelLease, ModelManager
from framepipe.models.onnx_model import OnnxModel
from framepipe.models.params import PARAMETERS_BY_TASK
from framepipe.models.session import create_session, runtime_plan
from framepipe.models.stub import StubModel

SUPPORTED_TASKS = tuple(PARAMETERS_BY_TASK)
"""The `project_task_type`s framepipe runs; each is its heads and their predictions."""


def load_model(
    model_id: str,
    api_key: str | None = None,
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
    workload: str | None = None,
) -> Model:
    """Load a fresh copy of ``model_id`` (no sharing; see ``get_model``). The session's threads
    come from this process's runtime plan (``intra_op_threads`` and ``workload`` choose it when
    no model chose it before)."""
    artifacts = resolve_model(model_id, api_key=api_key)
    if artifacts.is_stub:  # version 0: no files, empty and well-formed predictions
        return StubModel(artifacts)
    task = (artifacts.model_type or {}).get("project_task_type", "object-detection")
    if task not in SUPPORTED_TASKS:
        raise ModelArtifactError(f"model {model_id!r} is a {task!r} model; framepipe runs {', '.join(SUPPORTED_TASKS)}")
    plan = runtime_plan(workload, intra_op_threads)
    try:
        session = create_session(artifacts.weights_path, providers=providers, settings=plan.settings())
        return OnnxModel(artifacts, session)
    finally:
        artifacts.release()  # the session has read the files: `cache rm` may remove them now


DEFAULT_MANAGER: ModelManager[Model] = ModelManager(lambda model_id: load_model(model_id))
"""The manager ``get_model`` uses."""


def _key(model_id: str, providers: Sequence[str] | None) -> tuple[str, tuple[str, ...] | None]:
    return (model_id, tuple(providers) if providers is not None else None)


def get_model(
    model_id: str,
    api_key: str | None = None,
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
    workload: str | None = None,
) -> Model:
    """Load ``model_id`` (``dataset/version``, a model folder or an ``.onnx`` path), or return the
    copy already loaded in this process: every caller shares one session and one executor.

    ``api_key`` is passed to the model cache; ``providers`` pins the ONNX Runtime execution
    providers (see ``create_session``; another list of providers is another session).
    ``intra_op_threads`` and ``workload`` (``"latency"``, the default, or ``"throughput"``) choose
    this process's ONNX Runtime threads if no model chose them yet; after that they are ignored.
    """
    return DEFAULT_MANAGER.get(
        model_id,
        lambda: load_model(model_id, api_key, providers, intra_op_threads, workload),
        key=_key(model_id, providers),
    )


def acquire_model(
    model_id: str,
    api_key: str | None = None,
    providers: Sequence[str] | None = None,
    workload: str | None = None,
) -> ModelLease[Model]:
    """``get_model`` and hold it loaded until the lease is released (pipelines and servers)."""
    return DEFAULT_MANAGER.acquire(
        model_id, lambda: load_model(model_id, api_key, providers, None, workload), key=_key(model_id, providers)
    )
