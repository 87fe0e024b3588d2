"""Shared fixtures: real H.264 clips made by framepipe's own generator, with ground truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from framepipe.demo.clip import ClipInfo, make_clip


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> ClipInfo:
    """A 3 s, 30 fps, 640x360 H.264 clip of moving shapes and its ground truth."""
    folder = tmp_path_factory.mktemp("clip")
    return make_clip(folder / "shapes.mp4", seconds=3.0, seed=11)


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> ClipInfo:
    """A 10 s clip, long enough to stop a pipeline in the middle of it."""
    folder = tmp_path_factory.mktemp("long_clip")
    return make_clip(folder / "long.mp4", seconds=10.0, seed=12, size=(320, 192))


@pytest.fixture
def not_a_video(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("these are notes, not a video\n" * 50)
    return path
