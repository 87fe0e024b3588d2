"""Train the bundled ``framepipe-shapes-cls`` classifier on CPU and export it in Roboflow's layout.

Needs the ``train`` extra. The classifier names the shape of a single-shape image (circle,
square, triangle, star). It is the backbone of the shipped ``framepipe-shapes/1`` detector (loaded
from its ONNX file, see ``train_common``), global average pooling and one linear layer, fine-tuned
on generated single-shape scenes. Its ONNX output is ``[batch, 4]`` probabilities (the graph ends
in a softmax); its input is YOLOv8-cls's, RGB normalised with mean and std 0.5 (``model_type``
``yolov8n-cls``), letterboxed into 128 x 128 (Roboflow pads with the mean colour).

Example (about 4 minutes on 2 cores)::

    python -m framepipe.demo.train_cls --out framepipe/artifacts/bundled/framepipe-shapes-cls/1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from framepipe.demo.scenes import CLASS_NAMES, random_scene_shapes
from framepipe.demo.train import ShapesNet
from framepipe.demo.train_common import (
    augment,
    bundled_weights,
    cosine,
    export_onnx,
    frame_size,
    freeze_batch_norms,
    load_detector,
    set_metadata,
    write_side_files,
)
from framepipe.models.preprocess import letterbox

INPUT = 128
PAD = (128, 128, 128)  # the mean colour: Roboflow pads a normalised model's letterbox with it


class ShapesClassifier(nn.Module):
    """The detector's backbone (strides 4-32), average pooling and a linear layer; softmax out."""

    def __init__(self, detector: ShapesNet, num_classes: int = len(CLASS_NAMES)) -> None:
        super().__init__()
        self.stem, self.c3, self.c4, self.c5 = detector.stem, detector.c3, detector.c4, detector.c5
        self.fc = nn.Linear(128, num_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` normalised as YOLOv8-cls ((RGB / 255 - 0.5) / 0.5); the backbone wants 0..1."""
        features = self.c5(self.c4(self.c3(self.stem(x * 0.5 + 0.5))))
        return self.fc(features.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(dim=1)


def training_sample(seed: int) -> tuple[np.ndarray, int]:
    """One letterboxed single-shape image (BGR) and its class id."""
    rng = np.random.default_rng(seed)
    width, height = frame_size(rng, 300)
    short = min(width, height)
    image, truth, _ = random_scene_shapes(
        width, height, rng, count=(1, 1), radius_range=(0.08 * short, 0.36 * short), min_visible=0.7
    )
    if len(truth.class_ids) == 0:
        return training_sample(seed + 7_777_777)
    canvas, _ = letterbox(augment(image, rng), INPUT, INPUT, PAD)
    return canvas, int(truth.class_ids[0])


def build_dataset(count: int, seed: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    seeds = [seed * 1_000_003 + i for i in range(count)]
    images = np.empty((count, INPUT, INPUT, 3), np.uint8)
    labels = np.empty((count,), np.int64)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for i, (image, label) in enumerate(pool.imap(training_sample, seeds, chunksize=64)):
            images[i], labels[i] = image, label
    return images, labels


def to_tensor(images: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
    """BGR uint8 ``[B, H, W, 3]`` → normalised RGB ``[B, 3, H, W]``, with random flips when ``rng``."""
    batch = images[..., ::-1].astype(np.float32) * (2 / 255) - 1
    if rng is not None:
        flip_x, flip_y = rng.random(len(batch)) < 0.5, rng.random(len(batch)) < 0.5
        batch[flip_x] = batch[flip_x, :, ::-1]
        batch[flip_y] = batch[flip_y, ::-1]
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))


def export(model: ShapesClassifier, folder: str) -> None:
    """Write ``weights.onnx`` (dynamic batch, opset 17) and Roboflow's side files."""
    import onnx

    os.makedirs(folder, exist_ok=True)
    weights = os.path.join(folder, "weights.onnx")
    proto = export_onnx(model, weights, INPUT, INPUT)
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = len(CLASS_NAMES)
    names = {i: n for i, n in enumerate(CLASS_NAMES)}
    set_metadata(
        proto,
        {
            "description": "framepipe demo shapes classifier (circle, square, triangle, star)",
            "author": "framepipe",
            "license": "Apache-2.0",
            "task": "classify",
            "batch": "-1",
            "imgsz": str([INPUT, INPUT]),
            "names": str(names),
        },
    )
    onnx.checker.check_model(proto)
    onnx.save(proto, weights)
    write_side_files(folder, "classification", "yolov8n-cls", "framepipe-shapes-cls/1", INPUT, INPUT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", required=True, help="model folder to write (Roboflow layout)")
    parser.add_argument("--images", type=int, default=6000, help="training images to generate")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    images, labels = build_dataset(args.images, args.seed, args.threads)
    held_out, held_labels = build_dataset(400, args.seed + 1000, args.threads)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    print(f"dataset: {len(labels)} images in {time.perf_counter() - started:.0f} s", flush=True)
    detector = ShapesNet()
    load_detector(detector, bundled_weights("framepipe-shapes"))
    model = ShapesClassifier(detector)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine(args.steps, min(50, args.steps // 10)))
    rng = np.random.default_rng(args.seed)
    running = None
    for step in range(args.steps):
        model.train()
        freeze_batch_norms([model])  # the detector's folded statistics stay as they are
        indices = rng.integers(0, len(labels), args.batch)
        loss = F.cross_entropy(model.logits(to_tensor(images[indices], rng)), torch.from_numpy(labels[indices]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}/{args.steps}  loss {running:.3f}  {time.perf_counter() - started:.0f} s", flush=True)
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(to_tensor(held_out[i : i + 100])).argmax(1) for i in range(0, 400, 100)])
    accuracy = float((predicted.numpy() == held_labels).mean())
    print(f"held-out top-1: {accuracy:.3f} on {len(held_labels)} generated images", flush=True)
    export(model, args.out)
    print(f"exported to {args.out} after {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
