"""Small real ONNX models built with onnx.helper for the decoder and preprocessing tests.

Each model takes ``images [batch, 3, H, W]`` and returns fixed tensors broadcast over the batch
(``0 * mean(images) + constant``), so the raw outputs are known exactly and onnxruntime still
runs a real graph on the real input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build_model(
    path: Path,
    outputs: dict[str, np.ndarray],
    input_hw: tuple[int | str, int | str] = (640, 640),
    batch: int | str = "batch",
    input_type: int = TensorProto.FLOAT,
    metadata: dict[str, str] | None = None,
    output_dims: dict[str, list[int | str]] | None = None,
    unbatched: tuple[str, ...] = (),
) -> Path:
    """Write a model whose outputs are ``outputs`` (arrays without the batch axis) for every image.
    ``output_dims`` declares other axes for an output (symbolic names such as ``"anchors"``);
    the outputs named in ``unbatched`` are given as they are, with no batch axis (YOLACT's priors)."""
    nodes = []
    initializers = [numpy_helper.from_array(np.array([-1, 1], np.int64), "flat_shape")]
    image = "images"
    if input_type == TensorProto.FLOAT16:
        nodes.append(helper.make_node("Cast", ["images"], ["images_f32"], to=TensorProto.FLOAT))
        image = "images_f32"
    nodes.append(helper.make_node("ReduceMean", [image], ["mean"], axes=[1, 2, 3], keepdims=1))
    nodes.append(helper.make_node("Reshape", ["mean", "flat_shape"], ["mean_2d"]))  # [B, 1]
    nodes.append(helper.make_node("Mul", ["mean_2d", "zero"], ["zeros_2d"]))
    initializers.append(numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero"))
    graph_outputs = []
    for index, (name, value) in enumerate(outputs.items()):
        value = value.astype(np.float32)
        rank = value.ndim + 1
        shape_name = f"shape_{index}"
        initializers.append(numpy_helper.from_array(np.array([-1] + [1] * value.ndim, np.int64), shape_name))
        if name in unbatched:
            initializers.append(numpy_helper.from_array(value, f"value_{index}"))
            nodes.append(helper.make_node("Identity", [f"value_{index}"], [name]))
            graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
            continue
        initializers.append(numpy_helper.from_array(value[None], f"value_{index}"))
        nodes.append(helper.make_node("Reshape", ["zeros_2d", shape_name], [f"zeros_{index}"]))
        nodes.append(helper.make_node("Add", [f"zeros_{index}", f"value_{index}"], [name]))
        dims = [batch, *value.shape] if name not in (output_dims or {}) else list((output_dims or {})[name])
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims[:rank]))
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", input_type, [batch, 3, *input_hw])],
        graph_outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    for key, text in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, text
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def model_folder(
    folder: Path,
    outputs: dict[str, np.ndarray],
    class_names: list[str],
    model_type: str,
    preprocessing: dict | None = None,
    input_hw: tuple[int | str, int | str] = (640, 640),
    batch: int | str = "batch",
    environment_extra: dict | None = None,
    task_type: str = "object-detection",
    keypoints_metadata: list | None = None,
) -> Path:
    """A model folder in Roboflow's layout around ``build_model`` (``task_type`` goes to
    ``model_type.json``, ``keypoints_metadata`` to ``keypoints_metadata.json``)."""
    build_model(folder / "weights.onnx", outputs, input_hw=input_hw, batch=batch)
    if keypoints_metadata is not None:
        (folder / "keypoints_metadata.json").write_text(json.dumps(keypoints_metadata))
    pre = preprocessing or {"resize": {"enabled": True, "format": "Stretch to", "width": 640, "height": 640}}
    environment = {"PREPROCESSING": json.dumps(pre), **(environment_extra or {})}
    (folder / "environment.json").write_text(json.dumps(environment))
    (folder / "class_names.txt").write_text("\n".join(class_names) + "\n")
    (folder / "model_type.json").write_text(json.dumps({"project_task_type": task_type, "model_type": model_type}))
    return folder
