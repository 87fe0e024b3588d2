"""Model ids, bundled models, the on-disk model cache (Roboflow's layout) and its downloads.

Example:
    >>> from framepipe.artifacts import resolve_model
    >>> resolve_model("framepipe-shapes/1").weights_path.name
    'weights.onnx'
"""

from framepipe.artifacts.aliases import register_alias, resolve_alias
from framepipe.artifacts.cache import CacheState, ModelCache, default_cache_dir
from framepipe.artifacts.fetch import FetchResult, fetch_model
from framepipe.artifacts.folder import ModelArtifacts, load_folder
from framepipe.artifacts.model_id import ModelRef, parse_model_id
from framepipe.artifacts.resolve import bundled_model_ids, resolve_model
from framepipe.artifacts.settings import RegistrySettings

__all__ = [
    "CacheState",
    "FetchResult",
    "ModelArtifacts",
    "ModelCache",
    "ModelRef",
    "RegistrySettings",
    "bundled_model_ids",
    "default_cache_dir",
    "fetch_model",
    "load_folder",
    "parse_model_id",
    "register_alias",
    "resolve_alias",
    "resolve_model",
]
