"""Train the bundled ``framepipe-shapes`` detector on CPU and export it in Roboflow's layout.

Needs the ``train`` extra (``pip install -e '.[train]'``, which pins ``torch==2.13.0``); framepipe
itself never imports torch. The detector is a small anchor-free single-stage network (FCOS-style
centre sampling, quality focal loss, GIoU) over three levels (strides 8, 16, 32). Its ONNX output
has the YOLOv8 layout ``[batch, 4 + classes, anchors]``: centre x, y, width, height in input pixels,
then one sigmoid score per class, so any YOLOv8 decoder reads it.

Example (23 minutes on 2 cores, measured)::

    python -m framepipe.demo.train --out framepipe/artifacts/bundled/framepipe-shapes/1
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from framepipe.demo.scenes import CLASS_COLORS, CLASS_NAMES, random_scene
from framepipe.demo.train_common import augment, export_onnx
from framepipe.models.preprocess import letterbox

INPUT_W, INPUT_H = 320, 192  # 16:9 frames fill it with 6 px of padding above and below
STRIDES = (8, 16, 32)
SIZE_RANGES = ((0.0, 32.0), (32.0, 64.0), (64.0, math.inf))  # max(l, t, r, b) per level
CENTER_RADIUS = 2.5
# Training pulls the score of every found object to at least 0.5 (0.5 + 0.5 IoU), so 0.5 is the
# model's own decision boundary. The exported head shifts its logits so that this boundary reads
# 0.4, the confidence threshold Roboflow's pipeline (and framepipe's) uses by default.
EXPORT_SCORE_SHIFT = math.log(0.4 / 0.6)


class ConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.SiLU(inplace=True),
        )


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = ConvBN(c, c)
        self.b = ConvBN(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class ShapesNet(nn.Module):
    """Backbone (strides 4-32) → top-down FPN → one light head per level."""

    def __init__(self, num_classes: int = len(CLASS_NAMES), neck: int = 48) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential(ConvBN(3, 16, 3, 2), ConvBN(16, 24, 3, 2))
        self.c3 = nn.Sequential(ConvBN(24, 48, 3, 2), Residual(48))
        self.c4 = nn.Sequential(ConvBN(48, 96, 3, 2), Residual(96))
        self.c5 = nn.Sequential(ConvBN(96, 128, 3, 2), Residual(128))
        self.lat3, self.lat4, self.lat5 = ConvBN(48, neck, 1), ConvBN(96, neck, 1), ConvBN(128, neck, 1)
        self.smooth3, self.smooth4 = ConvBN(neck, neck), ConvBN(neck, neck)
        self.heads = nn.ModuleList(
            nn.Sequential(ConvBN(neck, neck), nn.Conv2d(neck, 4 + num_classes, 1)) for _ in STRIDES
        )
        self.register_buffer("score_shift", torch.zeros(()))  # logit offset applied by forward() only
        for head in self.heads:
            last = head[-1]
            assert isinstance(last, nn.Conv2d) and last.bias is not None
            nn.init.constant_(last.bias[4:], -4.6)  # start with scores near 0.01

    def raw(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per level ``[B, 4 + nc, H, W]``: box distances (before softplus), class logits."""
        c3 = self.c3(self.stem(x))
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p5 = self.lat5(c5)
        p4 = self.smooth4(self.lat4(c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest"))
        p3 = self.smooth3(self.lat3(c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest"))
        return [head(p) for head, p in zip(self.heads, (p3, p4, p5), strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` RGB in 0..1 → ``[B, 4 + nc, anchors]`` (cx, cy, w, h, class scores)."""
        outputs = []
        for level, stride in zip(self.raw(x), STRIDES, strict=True):
            _, _, h, w = level.shape
            ys = (torch.arange(h, dtype=x.dtype) + 0.5) * stride
            xs = (torch.arange(w, dtype=x.dtype) + 0.5) * stride
            ax = xs.view(1, 1, w).expand(1, h, w).reshape(1, -1)
            ay = ys.view(1, h, 1).expand(1, h, w).reshape(1, -1)
            flat = level.flatten(2)
            ltrb = F.softplus(flat[:, :4]) * stride
            x1, y1 = ax - ltrb[:, 0], ay - ltrb[:, 1]
            x2, y2 = ax + ltrb[:, 2], ay + ltrb[:, 3]
            boxes = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=1)
            outputs.append(torch.cat([boxes, (flat[:, 4:] + self.score_shift).sigmoid()], dim=1))
        return torch.cat(outputs, dim=2)


def anchor_points(width: int = INPUT_W, height: int = INPUT_H) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centres ``(N, 2)``, strides ``(N,)`` and level index ``(N,)`` of every output location."""
    points, strides, levels = [], [], []
    for index, stride in enumerate(STRIDES):
        nx, ny = width // stride, height // stride
        ys, xs = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        points.append(torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).mul(stride))
        strides.append(torch.full((nx * ny,), float(stride)))
        levels.append(torch.full((nx * ny,), index))
    return torch.cat(points), torch.cat(strides), torch.cat(levels)


def box_iou_giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and GIoU of paired xyxy boxes."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp(min=0).prod(1) + 1e-7
    return iou, iou - (hull - union) / hull


def assign(
    points: torch.Tensor, strides: torch.Tensor, levels: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """For each image and location, the index of its ground-truth box, or -1.

    ``boxes`` is ``[B, M, 4]`` (padded), ``valid`` ``[B, M]``. A location takes a box when it lies
    inside it, within ``CENTER_RADIUS`` strides of its centre and on the level whose size range
    holds its distances; among several boxes it takes the smallest.
    """
    px = points[None, :, None, 0]
    py = points[None, :, None, 1]
    x1, y1, x2, y2 = (boxes[:, None, :, i] for i in range(4))
    ltrb = torch.stack([px - x1, py - y1, x2 - px, y2 - py], -1)  # [B, N, M, 4]
    inside = ltrb.min(-1).values > 0
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    radius = strides[None, :, None] * CENTER_RADIUS
    central = ((px - cx).abs() < radius) & ((py - cy).abs() < radius)
    reach = ltrb.max(-1).values
    lo = torch.tensor([r[0] for r in SIZE_RANGES])[levels][None, :, None]
    hi = torch.tensor([r[1] for r in SIZE_RANGES])[levels][None, :, None]
    ok = inside & central & (reach >= lo) & (reach <= hi) & valid[:, None, :]
    area = ((x2 - x1) * (y2 - y1)).expand_as(reach)
    area = torch.where(ok, area, torch.full_like(area, math.inf))
    best_area, best = area.min(-1)
    return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))


def detection_loss(
    raw: list[torch.Tensor],
    anchors: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    boxes: torch.Tensor,
    classes: torch.Tensor,
    valid: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    points, strides, levels = anchors
    flat = torch.cat([r.flatten(2) for r in raw], dim=2).transpose(1, 2)  # [B, N, 4 + nc]
    ltrb = F.softplus(flat[..., :4]) * strides[None, :, None]
    pred = torch.cat([points[None] - ltrb[..., :2], points[None] + ltrb[..., 2:]], dim=-1)
    logits = flat[..., 4:]
    with torch.no_grad():
        target_index = assign(points, strides, levels, boxes, valid)
    positive = target_index >= 0
    num_pos = max(int(positive.sum()), 1)
    b_idx, n_idx = positive.nonzero(as_tuple=True)
    g_idx = target_index[b_idx, n_idx]
    target_boxes = boxes[b_idx, g_idx]
    iou, giou = box_iou_giou(pred[b_idx, n_idx], target_boxes)
    quality = torch.zeros_like(logits)
    # scores learn the box quality, but a found object always scores above 0.5
    quality[b_idx, n_idx, classes[b_idx, g_idx]] = 0.5 + 0.5 * iou.detach().clamp(min=0.0)
    scores = logits.sigmoid()
    focal = (scores - quality).abs().pow(2)
    cls_loss = (F.binary_cross_entropy_with_logits(logits, quality, reduction="none") * focal).sum() / num_pos
    box_loss = (1 - giou).sum() / num_pos
    total = cls_loss + 2.0 * box_loss
    return total, {"cls": cls_loss.item(), "box": box_loss.item(), "pos": float(num_pos)}


def training_sample(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One letterboxed ``INPUT_W`` x ``INPUT_H`` BGR image with ``(M, 5)`` targets ``[x1, y1, x2,
    y2, class]`` in input pixels. Most scenes are 16:9 frames at the demo's scales, the rest other
    shapes and sizes; objects overlap more often than chance would place them."""
    rng = np.random.default_rng(seed)
    if rng.random() < 0.7:
        width = int(rng.uniform(0.9, 2.4) * INPUT_W)
        height = width * 9 // 16
    else:
        aspect = float(rng.choice([4 / 3, 1.0, 3 / 4, 21 / 9, 2.0]))
        long_side = int(rng.uniform(0.8, 2.4) * INPUT_W)
        width, height = (long_side, int(long_side / aspect)) if aspect >= 1 else (int(long_side * aspect), long_side)
    scale = min(INPUT_W / width, INPUT_H / height)
    short = min(width, height)
    lo = max(0.04 * short, 6.0 / scale)
    hi = max(min(0.17 * short, 44.0 / scale), lo * 1.5)
    image, truth = random_scene(
        width, height, rng, count=(1, 14), radius_range=(lo, hi), min_visible=0.45, cluster=float(rng.uniform(0, 0.6))
    )
    canvas, geometry = letterbox(augment(image, rng), INPUT_W, INPUT_H)
    boxes = truth.boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * geometry.scale_x + geometry.pad_x
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * geometry.scale_y + geometry.pad_y
    targets = np.concatenate([boxes, truth.class_ids[:, None].astype(np.float32)], axis=1)
    return canvas, targets


def build_dataset(count: int, seed: int, workers: int) -> tuple[np.ndarray, list[np.ndarray]]:
    seeds = [seed * 1_000_003 + i for i in range(count)]
    images = np.empty((count, INPUT_H, INPUT_W, 3), np.uint8)
    targets: list[np.ndarray] = []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for i, (image, target) in enumerate(pool.imap(training_sample, seeds, chunksize=64)):
            images[i] = image
            targets.append(target)
    return images, targets


def make_batch(
    images: np.ndarray, targets: list[np.ndarray], indices: np.ndarray, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images as RGB floats in 0..1 with random flips (shapes keep their class)."""
    batch = np.empty((len(indices), 3, INPUT_H, INPUT_W), np.float32)
    m = max(max((len(targets[i]) for i in indices), default=0), 1)
    boxes = np.zeros((len(indices), m, 4), np.float32)
    classes = np.zeros((len(indices), m), np.int64)
    valid = np.zeros((len(indices), m), bool)
    for row, index in enumerate(indices):
        image = images[index]
        t = targets[index].copy()
        if rng.random() < 0.5:
            image = image[:, ::-1]
            t[:, [0, 2]] = INPUT_W - t[:, [2, 0]]
        if rng.random() < 0.5:
            image = image[::-1]
            t[:, [1, 3]] = INPUT_H - t[:, [3, 1]]
        batch[row] = image[..., ::-1].transpose(2, 0, 1) / 255.0
        n = len(t)
        boxes[row, :n], classes[row, :n], valid[row, :n] = t[:, :4], t[:, 4].astype(np.int64), True
    tensor = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
    return tensor, torch.from_numpy(boxes), torch.from_numpy(classes), torch.from_numpy(valid)


def export(model: ShapesNet, folder: str) -> None:
    """Write ``weights.onnx`` (dynamic batch, opset 17, IR ≤ 10) and Roboflow's side files."""
    import onnx

    os.makedirs(folder, exist_ok=True)
    weights = os.path.join(folder, "weights.onnx")
    model = model.to(memory_format=torch.contiguous_format).eval()
    model.score_shift.fill_(EXPORT_SCORE_SHIFT)
    proto = export_onnx(model, weights, INPUT_H, INPUT_W)
    # the exporter leaves every output axis symbolic; only the batch is
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    dims[1].dim_value = 4 + model.num_classes
    dims[2].dim_value = sum((INPUT_W // s) * (INPUT_H // s) for s in STRIDES)
    names = {i: n for i, n in enumerate(CLASS_NAMES)}
    metadata = {
        "description": "framepipe demo shapes detector (circle, square, triangle, star)",
        "author": "framepipe",
        "license": "Apache-2.0",
        "task": "detect",
        "stride": str(max(STRIDES)),
        "batch": "-1",
        "imgsz": str([INPUT_H, INPUT_W]),
        "names": str(names),
    }
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, weights)
    preprocessing = {
        "auto-orient": {"enabled": False},
        "resize": {"enabled": True, "format": "Fit (grey edges) in", "width": INPUT_W, "height": INPUT_H},
    }
    environment = {
        "PREPROCESSING": json.dumps(preprocessing),
        "CLASS_MAP": {str(i): n for i, n in enumerate(CLASS_NAMES)},
        "COLORS": CLASS_COLORS,
    }
    with open(os.path.join(folder, "environment.json"), "w", encoding="utf-8") as f:
        json.dump(environment, f, indent=4)
    with open(os.path.join(folder, "class_names.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(CLASS_NAMES) + "\n")
    with open(os.path.join(folder, "model_type.json"), "w", encoding="utf-8") as f:
        json.dump(
            {"project_task_type": "object-detection", "model_type": "yolov8n", "model_id": "framepipe-shapes/1"},
            f,
            indent=4,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", required=True, help="model folder to write (Roboflow layout)")
    parser.add_argument("--images", type=int, default=10000, help="training images to generate")
    parser.add_argument("--steps", type=int, default=2600)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--init", default=None, help="start from the weights of this .pt file")
    parser.add_argument("--save", default=None, help="also save the trained weights to this .pt file")
    parser.add_argument("--export-only", action="store_true", help="with --init: export those weights, no training")
    args = parser.parse_args(argv)
    if args.export_only:
        if not args.init:
            parser.error("--export-only needs --init")
        model = ShapesNet()
        state = torch.load(args.init, weights_only=True)
        state.setdefault("score_shift", torch.zeros(()))
        model.load_state_dict(state)
        export(model, args.out)
        print(f"exported {args.init} to {args.out}", flush=True)
        return
    started = time.perf_counter()
    images, targets = build_dataset(args.images, args.seed, args.threads)  # before torch starts threads
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    print(f"dataset: {len(targets)} images in {time.perf_counter() - started:.0f} s", flush=True)
    model = ShapesNet().to(memory_format=torch.channels_last)  # about 1.4x faster on CPU
    if args.init:
        state = torch.load(args.init, weights_only=True)
        state.setdefault("score_shift", torch.zeros(()))
        model.load_state_dict(state)
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    warmup = min(200, args.steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(args.steps - warmup, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    anchors = anchor_points()
    rng = np.random.default_rng(args.seed)
    model.train()
    running: dict[str, Any] = {}
    for step in range(args.steps):
        indices = rng.integers(0, len(targets), args.batch)
        batch, boxes, classes, valid = make_batch(images, targets, indices, rng)
        loss, parts = detection_loss(model.raw(batch), anchors, boxes, classes, valid)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        scheduler.step()
        for key, value in parts.items():
            running[key] = 0.98 * running.get(key, value) + 0.02 * value
        if step % 100 == 0 or step == args.steps - 1:
            elapsed = time.perf_counter() - started
            print(
                f"step {step:5d}/{args.steps}  cls {running['cls']:.3f}  box {running['box']:.3f}  "
                f"pos/img {running['pos'] / args.batch:.1f}  lr {scheduler.get_last_lr()[0]:.5f}  {elapsed:.0f} s",
                flush=True,
            )
    if args.save:
        torch.save(model.state_dict(), args.save)
    export(model, args.out)
    print(f"exported to {args.out} after {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
