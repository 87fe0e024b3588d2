"""supervision's types from typed predictions, without the JSON round trip.

Example:
    >>> import numpy as np
    >>> from framepipe.predictions import Detections, FramePrediction
    >>> found = Detections(np.array([[10, 20, 50, 60]], np.float32), np.array([0.9], np.float32), np.array([0]))
    >>> FramePrediction((640, 360), ["cat"], detections=found).to_supervision().data["class_name"].tolist()
    ['cat']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from framepipe.predictions.types import FramePrediction

if TYPE_CHECKING:
    import supervision as sv


def to_supervision(prediction: FramePrediction) -> sv.Detections:
    """``sv.Detections`` of a detection-type prediction (empty for a classification)."""
    import supervision as sv

    found = prediction.detections
    if found is None or not len(found):
        return sv.Detections.empty()
    tracker = found.tracker_id
    names = np.array([prediction.class_name(int(c)) for c in found.class_id.tolist()])
    return sv.Detections(
        xyxy=found.xyxy.astype(np.float32),
        confidence=found.confidence,
        class_id=found.class_id,
        tracker_id=tracker,
        mask=found.mask,
        data={"class_name": names},
    )


def to_classifications(prediction: FramePrediction) -> sv.Classifications:
    """``sv.Classifications`` of a classification prediction (supervision has no
    ``from_inference`` for classification): every class id with its probability."""
    import supervision as sv

    found = prediction.classification
    if found is None:
        raise ValueError(f"a {prediction.task} prediction has no classification")
    return sv.Classifications(class_id=np.arange(len(found.confidence)), confidence=found.confidence)


def to_key_points(prediction: FramePrediction) -> sv.KeyPoints:
    """``sv.KeyPoints`` of a keypoint prediction (missing keypoints at 0, 0 with confidence 0,
    supervision's marker)."""
    import supervision as sv

    found = prediction.detections
    if found is None or found.keypoints is None or not len(found):
        return sv.KeyPoints.empty()
    names = np.array([prediction.class_name(int(c)) for c in found.class_id.tolist()])
    return sv.KeyPoints(
        xy=found.keypoints[..., :2].astype(np.float32),
        keypoint_confidence=found.keypoints[..., 2].astype(np.float32),
        class_id=found.class_id.astype(int),
        data={"class_name": names},
    )
