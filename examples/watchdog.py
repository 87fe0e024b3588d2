"""A watchdog reports latency and throughput while the pipeline runs (Roboflow's watchdog
example), and framepipe's own metrics() gives percentiles per stage.

    python examples/watchdog.py [VIDEO]
"""

from __future__ import annotations

import sys
import tempfile
import time

from framepipe import InferencePipeline
from framepipe.demo import make_clip
from framepipe.pipeline import BasePipelineWatchDog


def main() -> None:
    video = sys.argv[1] if len(sys.argv) > 1 else make_clip(f"{tempfile.mkdtemp()}/shapes.mp4", seconds=3).video_path
    watchdog = BasePipelineWatchDog()
    pipeline = InferencePipeline.init(
        model_id="framepipe-shapes/1",
        video_reference=video,
        on_prediction=lambda predictions, video_frame: time.sleep(0.005),
        watchdog=watchdog,
    )
    pipeline.start(use_main_thread=False)
    while pipeline.is_running():
        time.sleep(0.5)
        report = watchdog.get_report()
        for latency in report.latency_reports:
            if latency.e2e_latency is not None:
                print(
                    f"throughput {report.inference_throughput:.1f} fps, e2e latency {latency.e2e_latency * 1000:.0f} ms"
                )
    pipeline.join()
    snapshot = pipeline.metrics().to_dict()
    print("inference p95 ms:", snapshot["sources"]["0"]["latency_ms"]["inference"]["p95"])


if __name__ == "__main__":
    main()
