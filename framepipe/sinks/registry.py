"""Sinks named by spec strings, as on the command line and in a ``PipelineSpec``.

``display`` (a window, tiled for several sources), ``video:PATH`` (annotated H.264 MP4),
``jsonl:PATH`` (one JSON object per frame), ``udp:HOST:PORT`` (Roboflow's UDP messages),
``preview:PORT`` (MJPEG in a browser at ``http://127.0.0.1:PORT/``) and ``memory[:N]`` (the last
``N`` results, 64 by default, in an ``InMemoryBufferSink``). ``parse_sink_spec`` only checks a
string; ``build_sink`` makes the sink (opens its file or socket). ``register_sink_kind`` adds
a kind of your own.

Example:
    >>> from framepipe.sinks.registry import build_sink, parse_sink_spec
    >>> parse_sink_spec("udp:127.0.0.1:9999")
    SinkSpec(kind='udp', target='127.0.0.1:9999')
    >>> parse_sink_spec("printer:lp0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    framepipe.errors.SinkSpecError: sink 'printer:lp0': expected display, video:PATH, ...
    >>> buffer = build_sink("memory:2")
    >>> buffer.release()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from framepipe.errors import SinkSpecError
from framepipe.sinks.base import CallableSink, Sink

__all__ = ["EXPECTED", "SinkSpec", "build_sink", "parse_sink_spec", "register_sink_kind", "sink_kinds"]

EXPECTED = "expected display, video:PATH, jsonl:PATH, udp:HOST:PORT or preview:PORT (or memory[:N])"


@dataclass(frozen=True)
class SinkSpec:
    """A parsed sink spec: its kind and what follows the first colon."""

    kind: str
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind


def _udp_address(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected udp:HOST:PORT")
    return host, int(port)


def _port(target: str) -> int:
    if not target.isdigit() or not 0 <= int(target) < 65536:
        raise ValueError("expected preview:PORT")
    return int(target)


def _memory_size(target: str) -> int:
    if target and (not target.isdigit() or int(target) < 1):
        raise ValueError("expected memory or memory:N with N at least 1")
    return int(target) if target else 64


def _display(target: str) -> Sink:
    from functools import partial

    from framepipe.sinks.render import render_boxes

    return CallableSink(partial(render_boxes, display_size=(1280, 720)))


def _video(target: str) -> Sink:
    from framepipe.sinks.video_file import VideoFileSink

    return VideoFileSink.init(target, output_fps=None)


def _jsonl(target: str) -> Sink:
    from framepipe.sinks.jsonl import JsonlSink

    return JsonlSink(target)


def _udp(target: str) -> Sink:
    from framepipe.sinks.udp import UDPSink

    return UDPSink.init(*_udp_address(target))


def _preview(target: str) -> Sink:
    from framepipe.sinks.mjpeg_preview import MJPEGPreviewSink

    return CallableSink(MJPEGPreviewSink(port=_port(target)).on_prediction)


def _memory(target: str) -> Sink:
    from framepipe.sinks.buffer import InMemoryBufferSink

    return InMemoryBufferSink(_memory_size(target))


def _needs_target(target: str) -> None:
    if not target:
        raise ValueError("a path is needed")


def _no_target(target: str) -> None:
    if target:
        raise ValueError("takes nothing after its name")


_KINDS: dict[str, tuple[Callable[[str], Any], Callable[[str], Sink]]] = {
    "display": (_no_target, _display),
    "video": (_needs_target, _video),
    "jsonl": (_needs_target, _jsonl),
    "udp": (_udp_address, _udp),
    "preview": (_port, _preview),
    "memory": (_memory_size, _memory),
}


def sink_kinds() -> list[str]:
    """The kinds known, in registration order."""
    return list(_KINDS)


def register_sink_kind(kind: str, check: Callable[[str], Any], build: Callable[[str], Sink]) -> None:
    """Add ``kind``: ``check(target)`` raises ``ValueError`` for a bad target, ``build(target)``
    makes the sink."""
    if not kind.isidentifier():
        raise ValueError(f"a sink kind is a plain name, got {kind!r}")
    _KINDS[kind] = (check, build)


def parse_sink_spec(text: str | SinkSpec) -> SinkSpec:
    """Check a spec string without building anything; raises ``SinkSpecError`` saying what is wrong."""
    if isinstance(text, SinkSpec):
        return text
    if not isinstance(text, str):
        raise SinkSpecError(f"a sink spec is a string such as 'jsonl:out.jsonl', got {type(text).__name__}")
    kind, _, target = text.partition(":")
    entry = _KINDS.get(kind)
    if entry is None:
        raise SinkSpecError(f"sink {text!r}: {EXPECTED}")
    try:
        entry[0](target)
    except ValueError as error:
        raise SinkSpecError(f"sink {text!r}: {error}; {EXPECTED}") from None
    return SinkSpec(kind, target)


def build_sink(spec: str | SinkSpec) -> Sink:
    """The sink a spec names (its file or socket is opened now)."""
    parsed = parse_sink_spec(spec)
    return _KINDS[parsed.kind][1](parsed.target)
