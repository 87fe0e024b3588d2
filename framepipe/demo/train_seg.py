"""Train the bundled ``framepipe-shapes-seg`` instance segmentation model on CPU and export it in
Roboflow's layout.

Needs the ``train`` extra. The model is the shipped ``framepipe-shapes/1`` detector (loaded from
its ONNX file and kept frozen, so its boxes and scores are the detector's) with YOLOv8-seg's two
additions: a prototype branch (32 prototypes at stride 2, built from the backbone's stride-2 and
stride-4 features and the FPN's stride-8 level) and, at each FPN level, a head of 32 mask
coefficients. Only those train, on the exact visible masks of generated scenes (later shapes hide
earlier ones), with YOLOv8's loss: binary cross-entropy of ``coefficients @ prototypes`` against
the mask, inside the object's box. The ONNX outputs have the YOLOv8-seg layout: predictions
``[batch, 4 + 4 + 32, 1260]`` and prototypes ``[batch, 32, 96, 160]`` (``model_type``
``yolov8n-seg``).

The shipped weights are this module's defaults (the 1200-step schedule), 15 minutes of wall
time on 2 otherwise idle cores::

    python -m framepipe.demo.train_seg --out framepipe/artifacts/bundled/framepipe-shapes-seg/1
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from framepipe.demo.scenes import CLASS_NAMES, id_map, random_scene_shapes
from framepipe.demo.train import (
    EXPORT_SCORE_SHIFT,
    INPUT_H,
    INPUT_W,
    STRIDES,
    ConvBN,
    ShapesNet,
    anchor_points,
    assign,
)
from framepipe.demo.train_common import (
    augment,
    bundled_weights,
    export_onnx,
    export_saved,
    frame_size,
    head_arguments,
    load_detector,
    prepare_training,
    set_metadata,
    train_heads,
    write_side_files,
)
from framepipe.models.preprocess import letterbox

MASKS = 32
PROTO_STRIDE = 2
PROTO_W, PROTO_H = INPUT_W // PROTO_STRIDE, INPUT_H // PROTO_STRIDE


class ShapesSegNet(nn.Module):
    """The frozen detector, a prototype branch and per-level coefficient heads."""

    def __init__(self, detector: ShapesNet, neck: int = 48) -> None:
        super().__init__()
        self.detector = detector
        for parameter in detector.parameters():
            parameter.requires_grad_(False)
        self.lat4 = ConvBN(24, neck, 1)
        self.mix4 = nn.Sequential(ConvBN(neck, neck), ConvBN(neck, 32, 1))
        self.lat2 = ConvBN(16, 32, 1)
        self.mix2 = nn.Sequential(ConvBN(32, 32), nn.Conv2d(32, MASKS, 1))
        self.coefficients = nn.ModuleList(nn.Sequential(ConvBN(neck, neck), nn.Conv2d(neck, MASKS, 1)) for _ in STRIDES)

    def train(self, mode: bool = True) -> ShapesSegNet:
        super().train(mode)
        self.detector.eval()  # frozen, batch norms included
        return self

    def parts(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Detector outputs per level, coefficients per level ``[B, 32, h, w]``, prototypes."""
        d = self.detector
        with torch.no_grad():
            s2 = d.stem[0](x)
            s4 = d.stem[1](s2)
            c3 = d.c3(s4)
            c4 = d.c4(c3)
            c5 = d.c5(c4)
            p5 = d.lat5(c5)
            p4 = d.smooth4(d.lat4(c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest"))
            p3 = d.smooth3(d.lat3(c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest"))
            levels = (p3, p4, p5)
            raw = [head(p) for head, p in zip(d.heads, levels, strict=True)]
        u = self.mix4(F.interpolate(p3, scale_factor=2.0, mode="bilinear") + self.lat4(s4))
        protos = self.mix2(F.interpolate(u, scale_factor=2.0, mode="bilinear") + self.lat2(s2))
        coefficients = [head(p) for head, p in zip(self.coefficients, levels, strict=True)]
        return raw, coefficients, protos

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 3, H, W]`` RGB 0..1 → (``[B, 4 + nc + 32, anchors]``, ``[B, 32, H/2, W/2]``)."""
        raw, coefficients, protos = self.parts(x)
        boxes = decode_levels(self.detector, raw, x.dtype)
        flat = torch.cat([c.flatten(2) for c in coefficients], dim=2)
        return torch.cat([boxes, flat], dim=1), protos


def decode_levels(detector: ShapesNet, raw: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """The detector's ``forward`` from its per-level outputs: ``[B, 4 + nc, anchors]``."""
    outputs = []
    for level, stride in zip(raw, STRIDES, strict=True):
        _, _, h, w = level.shape
        ys = (torch.arange(h, dtype=dtype) + 0.5) * stride
        xs = (torch.arange(w, dtype=dtype) + 0.5) * stride
        ax = xs.view(1, 1, w).expand(1, h, w).reshape(1, -1)
        ay = ys.view(1, h, 1).expand(1, h, w).reshape(1, -1)
        flat = level.flatten(2)
        ltrb = F.softplus(flat[:, :4]) * stride
        x1, y1 = ax - ltrb[:, 0], ay - ltrb[:, 1]
        x2, y2 = ax + ltrb[:, 2], ay + ltrb[:, 3]
        boxes = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=1)
        outputs.append(torch.cat([boxes, (flat[:, 4:] + detector.get_buffer("score_shift")).sigmoid()], dim=1))
    return torch.cat(outputs, dim=2)


def training_sample(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A letterboxed BGR input, its ``(M, 5)`` targets ``[x1, y1, x2, y2, class]`` in input pixels
    (the detector's distribution) and the input-sized map of which target shows at each pixel."""
    rng = np.random.default_rng(seed)
    width, height = frame_size(rng, INPUT_W)
    scale = min(INPUT_W / width, INPUT_H / height)
    short = min(width, height)
    lo = max(0.04 * short, 6.0 / scale)
    hi = max(min(0.17 * short, 44.0 / scale), lo * 1.5)
    image, truth, shapes = random_scene_shapes(
        width, height, rng, count=(1, 14), radius_range=(lo, hi), min_visible=0.45, cluster=float(rng.uniform(0, 0.6))
    )
    canvas, geometry = letterbox(augment(image, rng), INPUT_W, INPUT_H)
    boxes = truth.boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * geometry.scale_x + geometry.pad_x
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * geometry.scale_y + geometry.pad_y
    targets = np.concatenate([boxes, truth.class_ids[:, None].astype(np.float32)], axis=1)
    # half a pixel less radius: cv2 fills every pixel an outline touches (see instance_masks)
    shrunk = [replace(s, radius=max(s.radius - 0.5 / geometry.scale_x, 0.0)) for s in shapes]
    ids = id_map(shrunk, (INPUT_W, INPUT_H), geometry.scale_x, (geometry.pad_x, geometry.pad_y))
    new_w, new_h = geometry.resized_size
    inside = np.zeros_like(ids)
    inside[geometry.pad_y : geometry.pad_y + new_h, geometry.pad_x : geometry.pad_x + new_w] = 1
    return canvas, targets, ids * inside


def build_dataset(count: int, seed: int, workers: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    seeds = [seed * 1_000_003 + i for i in range(count)]
    images = np.empty((count, INPUT_H, INPUT_W, 3), np.uint8)
    maps = np.empty((count, INPUT_H, INPUT_W), np.uint8)
    targets: list[np.ndarray] = []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for i, (image, target, ids) in enumerate(pool.imap(training_sample, seeds, chunksize=32)):
            images[i], maps[i] = image, ids
            targets.append(target)
    return images, targets, maps


def make_batch(
    images: np.ndarray, targets: list[np.ndarray], maps: np.ndarray, indices: np.ndarray, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (RGB 0..1), boxes, classes, valid flags and id maps, with the same random flips."""
    batch = np.empty((len(indices), 3, INPUT_H, INPUT_W), np.float32)
    ids = np.empty((len(indices), INPUT_H, INPUT_W), np.uint8)
    m = max(max((len(targets[i]) for i in indices), default=0), 1)
    boxes = np.zeros((len(indices), m, 4), np.float32)
    classes = np.zeros((len(indices), m), np.int64)
    valid = np.zeros((len(indices), m), bool)
    for row, index in enumerate(indices):
        image, idm, t = images[index], maps[index], targets[index].copy()
        if rng.random() < 0.5:
            image, idm = image[:, ::-1], idm[:, ::-1]
            t[:, [0, 2]] = INPUT_W - t[:, [2, 0]]
        if rng.random() < 0.5:
            image, idm = image[::-1], idm[::-1]
            t[:, [1, 3]] = INPUT_H - t[:, [3, 1]]
        batch[row] = image[..., ::-1].transpose(2, 0, 1) / 255.0
        ids[row] = idm
        n = len(t)
        boxes[row, :n], classes[row, :n], valid[row, :n] = t[:, :4], t[:, 4].astype(np.int64), True
    return (
        torch.from_numpy(batch),
        torch.from_numpy(boxes),
        torch.from_numpy(classes),
        torch.from_numpy(valid),
        torch.from_numpy(ids),
    )


def mask_loss(
    coefficients: list[torch.Tensor],
    protos: torch.Tensor,
    anchors: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    boxes: torch.Tensor,
    valid: torch.Tensor,
    ids: torch.Tensor,
    rng: np.random.Generator,
    most: int = 256,
) -> torch.Tensor:
    """YOLOv8-seg's mask loss over (at most ``most``) positive locations: BCE of ``sigmoid(c @ P)``
    against the object's visible-area fraction of each prototype pixel, inside its box."""
    points, strides, levels = anchors
    with torch.no_grad():
        target_index = assign(points, strides, levels, boxes, valid)
    b_idx, n_idx = (target_index >= 0).nonzero(as_tuple=True)
    if len(b_idx) == 0:
        return protos.sum() * 0.0
    if len(b_idx) > most:
        keep = torch.from_numpy(rng.choice(len(b_idx), most, replace=False))
        b_idx, n_idx = b_idx[keep], n_idx[keep]
    g_idx = target_index[b_idx, n_idx]
    flat = torch.cat([c.flatten(2) for c in coefficients], dim=2)  # [B, 32, N]
    order = torch.argsort(b_idx, stable=True)  # grouped by image: one product per image
    b_idx, n_idx, g_idx = b_idx[order], n_idx[order], g_idx[order]
    coeff = flat[b_idx, :, n_idx]  # [P, 32]
    logits = torch.cat([coeff[b_idx == b] @ protos[b].reshape(MASKS, -1) for b in range(len(protos))]).reshape(
        -1, PROTO_H, PROTO_W
    )
    coverage = (ids[b_idx] == (g_idx + 1)[:, None, None].to(ids.dtype)).float()
    target = F.avg_pool2d(coverage[:, None], PROTO_STRIDE)[:, 0]  # fraction of each prototype pixel
    box = boxes[b_idx, g_idx] / PROTO_STRIDE
    xs = torch.arange(PROTO_W, dtype=torch.float32) + 0.5
    ys = torch.arange(PROTO_H, dtype=torch.float32) + 0.5
    within = (
        (xs[None, None, :] >= box[:, 0, None, None] - 1)
        & (xs[None, None, :] <= box[:, 2, None, None] + 1)
        & (ys[None, :, None] >= box[:, 1, None, None] - 1)
        & (ys[None, :, None] <= box[:, 3, None, None] + 1)
    ).float()
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * within
    return (loss.sum(dim=(1, 2)) / within.sum(dim=(1, 2)).clamp(min=1.0)).mean()


def export(model: ShapesSegNet, folder: str) -> None:
    """Write ``weights.onnx`` (dynamic batch, opset 17, IR ≤ 10) and Roboflow's side files."""
    import onnx

    os.makedirs(folder, exist_ok=True)
    weights = os.path.join(folder, "weights.onnx")
    model.detector.get_buffer("score_shift").fill_(EXPORT_SCORE_SHIFT)
    proto = export_onnx(model, weights, INPUT_H, INPUT_W, ("output0", "output1"))
    anchors = sum((INPUT_W // s) * (INPUT_H // s) for s in STRIDES)
    sizes_of = ((4 + len(CLASS_NAMES) + MASKS, anchors), (MASKS, PROTO_H, PROTO_W))
    for output, sizes in zip(proto.graph.output, sizes_of, strict=True):
        for axis, size in enumerate(sizes, start=1):
            output.type.tensor_type.shape.dim[axis].dim_value = size
    set_metadata(
        proto,
        {
            "description": "framepipe demo shapes instance segmentation (circle, square, triangle, star)",
            "author": "framepipe",
            "license": "Apache-2.0",
            "task": "segment",
            "stride": str(max(STRIDES)),
            "batch": "-1",
            "imgsz": str([INPUT_H, INPUT_W]),
            "names": str({i: n for i, n in enumerate(CLASS_NAMES)}),
        },
    )
    onnx.checker.check_model(proto)
    onnx.save(proto, weights)
    write_side_files(folder, "instance-segmentation", "yolov8n-seg", "framepipe-shapes-seg/1", INPUT_W, INPUT_H)


def main(argv: list[str] | None = None) -> None:
    description = __doc__.split("\n\n")[0] if __doc__ else None
    parser = head_arguments(description, images=5000, steps=1200, batch=12, lr=4e-3, seed=21)
    args = parser.parse_args(argv)
    if args.export_only:
        export_saved(ShapesSegNet(ShapesNet()), args.export_only, args.out, export)
        return
    started, (images, targets, maps) = prepare_training(args, build_dataset)
    detector = ShapesNet()
    load_detector(detector, bundled_weights("framepipe-shapes"))
    model = ShapesSegNet(detector)
    anchors = anchor_points()

    def step_loss(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        indices = rng.integers(0, len(targets), args.batch)
        batch, boxes, _, valid, ids = make_batch(images, targets, maps, indices, rng)
        _, coefficients, protos = model.parts(batch)
        loss = mask_loss(coefficients, protos, anchors, boxes, valid, ids, rng)
        return loss, {"mask": loss.item()}

    train_heads(model, args, step_loss, started)
    export(model, args.out)
    print(f"exported to {args.out} after {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
