"""What the training scripts of the task demo models share: the shipped detector's weights as a
starting point, augmentation, a cosine schedule and Roboflow's side files.

Needs the ``train`` extra (torch and onnx). The bundled ``framepipe-shapes/1`` detector ships as
ONNX only, with every batch norm folded into its convolution; ``load_detector`` puts those folded
weights back into a ``ShapesNet`` whose batch norms then compute ``x + bias`` (mean 0, variance
``1 - eps``), so that it starts exactly as the shipped detector does. Its batch norms must then stay
in eval mode (``freeze_batch_norms``) while the new parts train.

Example (loads the shipped detector; the outputs agree with onnxruntime's to 1e-4)::

    model = ShapesNet()
    load_detector(model, bundled_weights("framepipe-shapes"))
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from framepipe.demo.scenes import CLASS_COLORS, CLASS_NAMES


def bundled_weights(name: str) -> Path:
    """``weights.onnx`` of the bundled model ``name``/1."""
    from framepipe.artifacts.resolve import BUNDLED_DIR

    return BUNDLED_DIR / name / "1" / "weights.onnx"


def load_detector(model: nn.Module, onnx_path: str | os.PathLike[str]) -> None:
    """Copy the folded convolutions of a ``ShapesNet`` ONNX export into ``model`` (a ``ShapesNet``
    built with the same sizes), matching them by execution order and checking every shape."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(os.fspath(onnx_path))
    tensors = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    folded = [(tensors[n.input[1]], tensors[n.input[2]]) for n in proto.graph.node if n.op_type == "Conv"]
    order: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda module, *_: order.append(module))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    if len(order) != len(folded):
        raise ValueError(f"{onnx_path}: {len(folded)} convolutions, the model runs {len(order)}")
    following = {}
    modules = list(model.modules())
    for before, after in itertools.pairwise(modules):
        if isinstance(before, nn.Conv2d) and isinstance(after, nn.BatchNorm2d):
            following[before] = after
    with torch.no_grad():
        for conv, (weight, bias) in zip(order, folded, strict=True):
            if tuple(conv.weight.shape) != weight.shape:
                raise ValueError(f"{onnx_path}: weight {weight.shape} for a {tuple(conv.weight.shape)} convolution")
            conv.weight.copy_(torch.from_numpy(np.array(weight)))
            norm = following.get(conv)
            if norm is None:
                assert conv.bias is not None
                conv.bias.copy_(torch.from_numpy(np.array(bias)))
                continue
            norm.weight.fill_(1.0)
            norm.bias.copy_(torch.from_numpy(np.array(bias)))
            assert norm.running_mean is not None and norm.running_var is not None
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
    model.train(was_training)


def freeze_batch_norms(modules: Iterable[nn.Module]) -> None:
    """Put the batch norms of ``modules`` in eval mode (their statistics stay as loaded)."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The detector's photometric augmentation: grain, blur, JPEG and gain/bias, each at random."""
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(1, 6), (*image.shape[:2], 1)).astype(np.int16)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.2))
    if rng.random() < 0.6:
        _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(25, 95))])
        image = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR))
    if rng.random() < 0.5:
        gain, bias = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)
        image = np.clip(image.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    return image


def frame_size(rng: np.random.Generator, base: int) -> tuple[int, int]:
    """A random frame size: mostly 16:9 at 0.9 to 2.4 times ``base`` wide, else other aspects."""
    if rng.random() < 0.7:
        width = int(rng.uniform(0.9, 2.4) * base)
        return width, width * 9 // 16
    aspect = float(rng.choice([4 / 3, 1.0, 3 / 4, 21 / 9, 2.0]))
    long_side = int(rng.uniform(0.8, 2.4) * base)
    return (long_side, int(long_side / aspect)) if aspect >= 1 else (int(long_side * aspect), long_side)


def cosine(steps: int, warmup: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up, then cosine down to 2 %."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))

    return factor


def set_metadata(proto: object, metadata: dict[str, str]) -> None:
    """Replace an ONNX model's ``metadata_props``."""
    props = proto.metadata_props  # type: ignore[attr-defined]
    del props[:]
    for key, value in metadata.items():
        entry = props.add()
        entry.key, entry.value = key, value


def write_side_files(
    folder: str | os.PathLike[str],
    task: str,
    model_type: str,
    model_id: str,
    width: int,
    height: int,
    resize: str = "Fit (grey edges) in",
) -> None:
    """Roboflow's ``environment.json``, ``class_names.txt`` and ``model_type.json``."""
    preprocessing = {
        "auto-orient": {"enabled": False},
        "resize": {"enabled": True, "format": resize, "width": width, "height": height},
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
        json.dump({"project_task_type": task, "model_type": model_type, "model_id": model_id}, f, indent=4)


def head_arguments(
    description: str | None, *, images: int, steps: int, batch: int, lr: float, seed: int
) -> argparse.ArgumentParser:
    """The command line of a script that trains new heads on the frozen detector, with its defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True, help="model folder to write (Roboflow layout)")
    parser.add_argument("--images", type=int, default=images, help="training images to generate")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", default=None, help="also save the trained weights to this .pt file")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many steps of the schedule")
    parser.add_argument("--export-only", metavar="PT", default=None, help="export these saved weights, no training")
    return parser


def train_heads(
    model: nn.Module,
    args: argparse.Namespace,
    step_loss: Callable[[np.random.Generator], tuple[torch.Tensor, dict[str, float]]],
    started: float,
) -> None:
    """Train ``model``'s trainable parameters for ``args``' schedule (AdamW, cosine, gradients
    clipped at 10): ``step_loss(rng)`` draws one batch and returns its loss and the figures to
    print (running averages every 50 steps); then save the weights when ``--save`` asks."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"trainable parameters: {sum(p.numel() for p in trainable):,}", flush=True)
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine(args.steps, min(100, args.steps // 10)))
    rng = np.random.default_rng(args.seed)
    model.train()
    running: dict[str, float] = {}
    for step in range(min(args.steps, args.stop_after or args.steps)):
        loss, parts = step_loss(rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 10.0)
        optimizer.step()
        scheduler.step()
        for key, value in parts.items():
            running[key] = 0.98 * running.get(key, value) + 0.02 * value
        if step % 50 == 0 or step == args.steps - 1:
            figures = "  ".join(f"{key} {value:.4f}" for key, value in running.items())
            print(f"step {step:5d}/{args.steps}  {figures}  {time.perf_counter() - started:.0f} s", flush=True)
    if args.save:
        torch.save(model.state_dict(), args.save)


def export_saved(model: nn.Module, weights: str, folder: str, export: Callable[[Any, str], None]) -> None:
    """``--export-only``: load saved ``weights`` into ``model`` and ``export`` it to ``folder``."""
    model.load_state_dict(torch.load(weights, weights_only=True))
    export(model, folder)
    print(f"exported {weights} to {folder}", flush=True)


def export_onnx(model: nn.Module, path: str, height: int, width: int, outputs: Iterable[str] = ("output0",)) -> Any:
    """Export ``model`` (put in eval mode) to ``path``: input ``images`` ``[batch, 3, height,
    width]``, the batch axis dynamic on every output, opset 17, IR version at most 10 (what
    onnxruntime 1.31 reads); returns the loaded ``onnx`` proto to finish and save."""
    import onnx

    names = list(outputs)
    model.eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, height, width),),
        path,
        input_names=["images"],
        output_names=names,
        dynamic_axes={name: {0: "batch"} for name in ["images", *names]},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(path)
    proto.ir_version = min(proto.ir_version, 10)
    return proto


def prepare_training(args: argparse.Namespace, build_dataset: Callable[[int, int, int], Any]) -> tuple[float, Any]:
    """Start the clock, build the dataset (``build_dataset(images, seed, workers)``, whose second
    item is the list of targets), then seed torch and set its threads: the start time and data."""
    started = time.perf_counter()
    data = build_dataset(args.images, args.seed, args.threads)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    print(f"dataset: {len(data[1])} images in {time.perf_counter() - started:.0f} s", flush=True)
    return started, data
