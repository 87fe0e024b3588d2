"""Version ``0`` of any dataset is a stub model, as in Roboflow Inference: no files, no network.
``stub_artifacts`` describes it; ``framepipe.models.StubModel`` runs it (every image gets a
well-formed answer with no predictions).

Example:
    >>> from framepipe.artifacts import resolve_model
    >>> resolve_model("my-dataset/0").is_stub
    True
"""

from __future__ import annotations

from pathlib import Path

from framepipe.artifacts.folder import ModelArtifacts
from framepipe.artifacts.model_id import ModelRef

STUB_VERSION_ID = "0"
STUB_MODEL_TYPE = {"project_task_type": "object-detection", "model_type": "stub"}


def stub_artifacts(ref: ModelRef) -> ModelArtifacts:
    """The artifacts of the stub model ``<dataset>/0``: no files, ``is_stub=True``."""
    return ModelArtifacts(
        model_id=ref.model_id,
        weights_path=Path(),
        folder=Path(),
        environment={"PREPROCESSING": {}},
        class_names=[],
        model_type={**STUB_MODEL_TYPE, "model_id": ref.model_id},
        is_stub=True,
    )
