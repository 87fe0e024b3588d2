"""Make docs/frames/<task>.png: one frame per task annotated by ``render_boxes`` with the bundled
demo model of that task, on a generated scene it was not trained on.

    python scripts/docs_frames.py [--out docs/frames] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from framepipe.demo.scenes import random_scene
from framepipe.models import get_model
from framepipe.predictions import to_payload
from framepipe.sinks.render import annotate

MODELS = {
    "object-detection": "framepipe-shapes/1",
    "instance-segmentation": "framepipe-shapes-seg/1",
    "keypoint-detection": "framepipe-shapes-pose/1",
    "classification": "framepipe-shapes-cls/1",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/frames")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for task, model_id in MODELS.items():
        rng = np.random.default_rng(args.seed)
        if task == "classification":  # one shape: the classifier names it
            image, _ = random_scene(320, 320, rng, count=(1, 1), radius_range=(60.0, 110.0))
        else:
            image, _ = random_scene(640, 360, rng)
        options = {"keypoint_confidence": 0.5} if task == "keypoint-detection" else {}
        picture = annotate(image, to_payload(get_model(model_id).predict(image, **options)))
        path = out / f"{task}.png"
        cv2.imwrite(str(path), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"{path}: {model_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
