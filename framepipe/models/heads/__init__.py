"""One head per output layout: each says whether it fits a model's outputs, how many classes it
sees, and decodes them; ``choose_head`` picks one for a model (see ``registry``).

| head | outputs | score | NMS |
|---|---|---|---|
| ``yolov5`` | ``[B, N, 5 + nc]``: cx, cy, w, h, objectness, class scores | objectness x best class | yes |
| ``yolov8`` (v8, v9, v11, v12) | ``[B, 4 + nc, N]``: cx, cy, w, h, class scores | best class | yes |
| ``end-to-end`` (YOLOv10, YOLO26, ...) | ``[B, K, 6]``: x1, y1, x2, y2, score, class | as given | no |
| ``yolo-nas`` | boxes ``[B, N, 4]`` xyxy, scores ``[B, N, nc]`` | best class | yes |
| ``rf-detr`` | boxes ``[B, Q, 4]`` normalised cx, cy, w, h; logits ``[B, Q, nc]`` | sigmoid, top-k | no |
| ``yolov8-seg`` (v8, v11) | ``[B, 4 + nc + 32, N]`` + prototypes ``[B, 32, mh, mw]`` | best class | yes |
| ``yolov5-seg`` | ``[B, N, 5 + nc + 32]`` + prototypes ``[B, 32, mh, mw]`` | objectness x best class | yes |
| ``yolact`` | loc, conf (background first), mask, priors, proto (see ``yolact``) | best class | yes |
| ``yolov8-pose`` (v8, v11) | ``[B, 4 + nc + 3K, N]``: boxes, class scores, K keypoints | best class | yes |
| ``classification`` (YOLOv8-cls, ViT; ResNet) | ``[B, nc]`` | softmax unless already | no |

Each head declares its task (``Head.task``, Roboflow's ``project_task_type``); the heads of
segmentation, keypoints and classification are ``TaskHead``s, which make whole predictions.

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads import DecodeSettings, get_head
    >>> raw = np.zeros((6, 3), np.float32)              # one image: 2 classes, 3 anchors
    >>> raw[:, 1] = [50, 40, 20, 10, 0.1, 0.9]          # cx, cy, w, h, scores
    >>> found = get_head("yolov8").decode([raw], DecodeSettings(0.5, (64, 64)))
    >>> found.boxes.tolist(), found.class_ids.tolist()
    ([[40.0, 35.0, 60.0, 45.0]], [1])
"""

from framepipe.models.heads.base import Candidates, DecodeSettings, Head, OutputSpec
from framepipe.models.heads.registry import choose_head, get_head, heads, register_head, unregister_head

__all__ = [
    "Candidates",
    "DecodeSettings",
    "Head",
    "OutputSpec",
    "choose_head",
    "get_head",
    "heads",
    "register_head",
    "unregister_head",
]
