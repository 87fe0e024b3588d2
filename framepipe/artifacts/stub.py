"""Version ``0`` of any dataset is a stub model, as in Roboflow Inference: no files, no network.
``stub_artifacts`` describes it; ``framepipe.models.StubModel`` runs it (every image gets a
well-formed answer of the model's task with no predictions).

The stub's task is the dataset's: Roboflow asks its API for the project's type; framepipe reads
it from a version of the same dataset that is already here (bundled, or in the cache:
``model_type.json``'s ``project_task_type``), else it is ``object-detection``, Roboflow's
default for a dataset it cannot look up.

Example:
    >>> from framepipe.artifacts import resolve_model
    >>> resolve_model("my-dataset/0").is_stub
    True
    >>> resolve_model("framepipe-shapes/0").model_type["project_task_type"]
    'object-detection'
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from framepipe.artifacts.folder import ModelArtifacts, read_model_type
from framepipe.artifacts.layout import MODEL_TYPE_FILE
from framepipe.artifacts.model_id import ModelRef
from framepipe.errors import ModelArtifactError

STUB_VERSION_ID = "0"
DEFAULT_STUB_TASK = "object-detection"
STUB_MODEL_TYPE = {"project_task_type": DEFAULT_STUB_TASK, "model_type": "stub"}


def known_task(dataset_folders: Iterable[Path]) -> str | None:
    """The ``project_task_type`` of the first readable version folder (by version, newest first)
    under any of ``dataset_folders``, or ``None`` when none has a ``model_type.json``."""
    for dataset in dataset_folders:
        try:
            versions = sorted((v for v in dataset.iterdir() if v.is_dir()), key=lambda v: v.name, reverse=True)
        except OSError:
            continue
        for version in versions:
            path = version / MODEL_TYPE_FILE
            try:
                if path.is_file():
                    return str(read_model_type(path)["project_task_type"])
            except (ModelArtifactError, OSError):
                continue  # a damaged version says nothing about the dataset's task
    return None


def stub_artifacts(ref: ModelRef, task: str | None = None) -> ModelArtifacts:
    """The artifacts of the stub model ``<dataset>/0`` of ``task`` (default
    ``object-detection``): no files, ``is_stub=True``."""
    return ModelArtifacts(
        model_id=ref.model_id,
        weights_path=Path(),
        folder=Path(),
        environment={"PREPROCESSING": {}},
        class_names=[],
        model_type={**STUB_MODEL_TYPE, "project_task_type": task or DEFAULT_STUB_TASK, "model_id": ref.model_id},
        is_stub=True,
    )
