"""The demo: synthetic shape scenes, H.264 clips with ground truth, scoring, and the training of
the bundled ``framepipe-shapes`` detector.

Example:
    >>> from framepipe.demo import make_clip
    >>> info = make_clip("/tmp/shapes.mp4", seconds=1, seed=3)  # doctest: +SKIP
"""

from framepipe.demo.clip import ClipInfo, make_clip, read_truth, scene_frames
from framepipe.demo.scenes import CLASS_NAMES, GroundTruth, random_scene

__all__ = ["CLASS_NAMES", "ClipInfo", "GroundTruth", "make_clip", "random_scene", "read_truth", "scene_frames"]
