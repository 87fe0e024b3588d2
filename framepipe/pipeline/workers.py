"""How many inference workers to run, and with how many ONNX Runtime threads each.

Files want throughput: two workers, each with half of the cores, keep the cores busy while one
worker is between operators or in pre/post-processing (on 2 AVX-512 cores with YOLOv8n-640: 30.7
ms per frame against 34.9 for one worker with both cores). Live sources want latency: one worker
with all the cores finishes each frame soonest, and the freshest frame waits for it. With a GPU,
two workers let one prepare frames on the CPU while the other waits for the GPU.

Example:
    >>> from framepipe.pipeline.workers import plan_workers
    >>> plan_workers(None, live=False, cpu_count=8, gpu=False), plan_workers(None, live=True, cpu_count=8, gpu=False)
    ((2, 4), (1, 8))
"""

from __future__ import annotations

import os


def gpu_usable() -> bool:
    """Whether onnxruntime has a CUDA provider and an NVIDIA driver is present."""
    import onnxruntime as ort

    from framepipe.models.session import nvidia_driver_missing

    providers = set(ort.get_available_providers())
    return bool(providers & {"CUDAExecutionProvider", "TensorrtExecutionProvider"}) and nvidia_driver_missing() is None


def plan_workers(
    requested: int | None, live: bool = False, cpu_count: int | None = None, gpu: bool | None = None
) -> tuple[int, int | None]:
    """``(workers, intra_op_threads per session)``; ``None`` threads means ONNX Runtime's default."""
    cores = cpu_count or os.cpu_count() or 1
    on_gpu = gpu_usable() if gpu is None else gpu
    if requested is not None:
        workers = requested
    elif on_gpu:
        workers = 2
    else:
        workers = 1 if live or cores < 2 else 2
    if workers < 1:
        raise ValueError(f"inference_workers must be at least 1, got {workers}")
    if on_gpu:
        return workers, None
    return workers, max(cores // workers, 1)
