"""Model ids, bundled models and the on-disk model cache (Roboflow's layout).

Example:
    >>> from framepipe.artifacts import resolve_model
    >>> resolve_model("framepipe-shapes/1").weights_path.name
    'weights.onnx'
"""

from framepipe.artifacts.model_id import ModelRef, parse_model_id
from framepipe.artifacts.resolve import (
    ModelArtifacts,
    bundled_model_ids,
    default_cache_dir,
    load_folder,
    resolve_model,
)

__all__ = [
    "ModelArtifacts",
    "ModelRef",
    "bundled_model_ids",
    "default_cache_dir",
    "load_folder",
    "parse_model_id",
    "resolve_model",
]
