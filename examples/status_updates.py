"""Status updates: a handler sees what sources and the pipeline report (Roboflow's
status_update_handlers example). DEBUG events (one per frame) are left out here.

    python examples/status_updates.py [VIDEO]
"""

from __future__ import annotations

import sys
import tempfile

from framepipe import InferencePipeline, StatusUpdate, UpdateSeverity
from framepipe.demo import make_clip


def on_status_update(status: StatusUpdate) -> None:
    if status.severity.value >= UpdateSeverity.INFO.value:
        print(f"[{status.severity.name}] {status.context}: {status.event_type} {status.payload}")


def main() -> None:
    video = sys.argv[1] if len(sys.argv) > 1 else make_clip(f"{tempfile.mkdtemp()}/shapes.mp4", seconds=2).video_path
    pipeline = InferencePipeline.init(
        model_id="framepipe-shapes/1",
        video_reference=video,
        on_prediction=lambda predictions, video_frame: None,
        status_update_handlers=[on_status_update],
    )
    pipeline.start()
    pipeline.join()


if __name__ == "__main__":
    main()
