"""Loading a model by id: find its files, open a session, wrap it in the right model class.

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
from framepipe.models.session import create_session

SUPPORTED_TASKS = ("object-detection",)


def get_model(
    model_id: str,
    api_key: str | None = None,
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
) -> ObjectDetectionModel:
    """Load ``model_id`` (``dataset/version``, a model folder or an ``.onnx`` path).

    ``api_key`` is passed on to ``resolve_model``. ``providers`` pins the ONNX Runtime execution
    providers (see ``create_session``).
    """
    artifacts = resolve_model(model_id, api_key=api_key)
    task = (artifacts.model_type or {}).get("project_task_type", "object-detection")
    if task not in SUPPORTED_TASKS:
        raise ModelArtifactError(f"model {model_id!r} is a {task!r} model; framepipe runs {', '.join(SUPPORTED_TASKS)}")
    session = create_session(artifacts.weights_path, providers=providers, intra_op_threads=intra_op_threads)
    return ObjectDetectionModel(artifacts, session)
