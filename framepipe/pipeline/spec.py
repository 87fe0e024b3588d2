"""A pipeline described as data: ``PipelineSpec``, validated, serialisable to JSON and back, from
which a pipeline is built (for pipelines managed over HTTP, Ray actors, configuration files).

A spec holds the model id, the video references, Roboflow's ``init`` parameters (plain JSON
values; ``source_options`` as a dict of ``SourceOptions`` fields) and the sinks as spec strings
(``jsonl:PATH``, ``video:PATH``, ``udp:HOST:PORT``, ``display``, ``preview:PORT``, ``memory[:N]``;
see ``framepipe.sinks.registry``). Validation happens when the spec is made: an unknown
parameter, a value that is not JSON or a malformed sink raises ``SinkSpecError`` naming it.

Example:
    >>> from framepipe.pipeline.spec import PipelineSpec
    >>> spec = PipelineSpec("framepipe-shapes/1", ["clip.mp4"], {"confidence": 0.5}, ["jsonl:out.jsonl"])
    >>> PipelineSpec.from_json(spec.to_json()) == spec
    True
    >>> PipelineSpec("framepipe-shapes/1", ["clip.mp4"], {"confidance": 0.5})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    framepipe.errors.SinkSpecError: unknown pipeline parameter 'confidance'; known: ...
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from framepipe.errors import SinkSpecError
from framepipe.sinks.registry import build_sink, parse_sink_spec
from framepipe.sources import SourceOptions

if TYPE_CHECKING:
    from framepipe.pipeline.inference_pipeline import InferencePipeline

__all__ = ["PipelineSpec"]

# parameters of InferencePipeline.init that are code, not data, or are the spec's own fields
_NOT_DATA = {"video_reference", "model_id", "on_prediction", "watchdog", "status_update_handlers", "tracker", "cls"}


def _parameter_names() -> list[str]:
    from framepipe.pipeline.inference_pipeline import InferencePipeline

    return [n for n in inspect.signature(InferencePipeline.init).parameters if n not in _NOT_DATA]


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


@dataclass(frozen=True)
class PipelineSpec:
    """What a pipeline is, as data (see the module docstring)."""

    model_id: str
    video_reference: list[str | int]
    parameters: dict[str, Any] = field(default_factory=dict)
    sinks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.model_id, str) or not self.model_id:
            raise SinkSpecError(f"model_id must be a non-empty string, got {self.model_id!r}")
        references = self.video_reference
        if not isinstance(references, list) or not references:
            raise SinkSpecError("video_reference must be a non-empty list of paths, URLs or webcam indexes")
        for reference in references:
            if isinstance(reference, bool) or not isinstance(reference, (str, int)):
                raise SinkSpecError(f"a video reference is a string or a webcam index, got {reference!r}")
        known = _parameter_names()
        for name, value in self.parameters.items():
            if name not in known:
                raise SinkSpecError(f"unknown pipeline parameter {name!r}; known: {', '.join(sorted(known))}")
            if not _is_json(value):
                raise SinkSpecError(f"pipeline parameter {name!r} must be a JSON value, got {type(value).__name__}")
        options = self.parameters.get("source_options")
        if options is not None:
            fields = {f.name for f in dataclasses.fields(SourceOptions)}
            if not isinstance(options, dict) or not set(options) <= fields:
                raise SinkSpecError(f"source_options must be a dict with keys among {sorted(fields)}, got {options!r}")
        for sink in self.sinks:
            parse_sink_spec(sink)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "video_reference": list(self.video_reference),
            "parameters": dict(self.parameters),
            "sinks": list(self.sinks),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineSpec:
        if not isinstance(data, dict):
            raise SinkSpecError(f"a pipeline spec is a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"model_id", "video_reference", "parameters", "sinks"}
        if unknown:
            raise SinkSpecError(f"unknown pipeline spec fields {sorted(unknown)}")
        references: Any = data.get("video_reference")
        return cls(
            model_id=data.get("model_id", ""),
            video_reference=references if isinstance(references, list) else [references],
            parameters=dict(data.get("parameters") or {}),
            sinks=list(data.get("sinks") or []),
        )

    @classmethod
    def from_json(cls, text: str) -> PipelineSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SinkSpecError(f"a pipeline spec is JSON: {error}") from None
        return cls.from_dict(data)

    def build(self) -> InferencePipeline:
        """The pipeline (model loaded, sinks opened; not started). Its sinks are released when it ends."""
        from framepipe.pipeline.inference_pipeline import InferencePipeline
        from framepipe.sinks.multi import MultiSink

        parameters = dict(self.parameters)
        if parameters.get("source_options") is not None:
            parameters["source_options"] = SourceOptions(**parameters["source_options"])
        sinks = [build_sink(s) for s in self.sinks]
        on_prediction = MultiSink(sinks, names=list(self.sinks)) if sinks else None
        references = self.video_reference if len(self.video_reference) > 1 else self.video_reference[0]
        try:
            return InferencePipeline.init(references, self.model_id, on_prediction, **parameters)
        except BaseException:
            if on_prediction is not None:
                on_prediction.release()
            raise
