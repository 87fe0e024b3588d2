"""How many batches a pipeline keeps in flight (its inference workers).

Files want throughput: two batches in flight keep the cores busy while one is between operators
or in pre/post-processing. Live sources want latency: one batch at a time, run on every core, and
the freshest frame waits for it. With a GPU, two let one batch be prepared while the other runs.
The model's executor (shared by every pipeline on the model) caps how many run at once, and the
process's runtime plan (``framepipe.models.session.runtime_plan``) sets ONNX Runtime's threads.

Example:
    >>> from framepipe.pipeline.workers import plan_workers
    >>> plan_workers(None, live=False, cpu_count=8, gpu=False), plan_workers(None, live=True, cpu_count=8, gpu=False)
    (2, 1)
"""

from __future__ import annotations

import os


def plan_workers(
    requested: int | None, live: bool = False, cpu_count: int | None = None, gpu: bool | None = None
) -> int:
    """The number of inference workers (batches in flight) for a pipeline."""
    cores = cpu_count or os.cpu_count() or 1
    if gpu is None:
        from framepipe.models.session import gpu_usable

        gpu = gpu_usable()
    if requested is not None:
        workers = requested
    elif gpu:
        workers = 2
    else:
        workers = 1 if live or cores < 2 else 2
    if workers < 1:
        raise ValueError(f"inference_workers must be at least 1, got {workers}")
    return workers
