"""Loading a model by id: find its files, open a session on the best provider, wrap it.

Example:
    >>> from framepipe.models import get_model
    >>> get_model("framepipe-shapes/1").class_names
    ['circle', 'square', 'triangle', 'star']
"""

from __future__ import annotations

from collections.abc import Sequence

from framepipe.artifacts import resolve_model
from framepipe.errors import ModelArtifactError
from framepipe.models.detector import ObjectDetectionModel
from framepipe.models.manager import DEFAULT_MANAGER
from framepipe.models.session import create_session
from framepipe.models.stub import StubModel

SUPPORTED_TASKS = ("object-detection",)


def load_model(
    model_id: str,
    api_key: str | None = None,
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
) -> ObjectDetectionModel:
    """Load a fresh copy of ``model_id`` (no sharing; see ``get_model``)."""
    artifacts = resolve_model(model_id, api_key=api_key)
    if artifacts.is_stub:  # version 0: no files, empty and well-formed predictions
        return StubModel(artifacts)
    task = (artifacts.model_type or {}).get("project_task_type", "object-detection")
    if task not in SUPPORTED_TASKS:
        raise ModelArtifactError(f"model {model_id!r} is a {task!r} model; framepipe runs {', '.join(SUPPORTED_TASKS)}")
    session = create_session(artifacts.weights_path, providers=providers, intra_op_threads=intra_op_threads)
    return ObjectDetectionModel(artifacts, session)


def get_model(
    model_id: str,
    api_key: str | None = None,
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
) -> ObjectDetectionModel:
    """Load ``model_id`` (``dataset/version``, a model folder or an ``.onnx`` path), or return the
    copy already loaded in this process with the same settings.

    ``api_key`` is passed to the model cache; ``providers`` pins the ONNX Runtime execution
    providers (see ``create_session``); ``intra_op_threads`` sets ONNX Runtime's thread count.
    """
    key = (model_id, tuple(providers) if providers is not None else None, intra_op_threads)
    return DEFAULT_MANAGER.get(model_id, lambda: load_model(model_id, api_key, providers, intra_op_threads), key=key)
