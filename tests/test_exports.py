"""Each package's public names, pinned: adding or removing one is a decision, made here."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import framepipe

EXPORTS: dict[str, list[str] | None] = {
    "framepipe": [
        "BufferConsumptionStrategy",
        "BufferFillingStrategy",
        "EventType",
        "InferencePipeline",
        "ObjectDetectionModel",
        "PipelineSpec",
        "SinkMode",
        "SourceProperties",
        "StatusUpdate",
        "UpdateSeverity",
        "VideoFrame",
        "VideoSource",
        "__version__",
        "get_model",
    ],
    "framepipe._internal": None,
    "framepipe.artifacts": [
        "CacheState",
        "FetchResult",
        "ModelArtifacts",
        "ModelCache",
        "ModelRef",
        "RegistrySettings",
        "bundled_model_ids",
        "default_cache_dir",
        "fetch_model",
        "load_folder",
        "parse_model_id",
        "register_alias",
        "resolve_alias",
        "resolve_model",
    ],
    "framepipe.client": [
        "APIKeyNotProvided",
        "ApiKeyTransport",
        "EncodingError",
        "HTTPCallErrorError",
        "HTTPClientError",
        "HTTPClientMode",
        "HTTPServerConnectionError",
        "InferenceConfiguration",
        "InferenceHTTPClient",
        "InvalidInputFormatError",
        "InvalidModelIdentifier",
        "InvalidParameterError",
        "ModelDescription",
        "ModelNotInitializedError",
        "ModelNotSelectedError",
        "ModelTaskTypeNotSupportedError",
        "RegisteredModels",
        "ServerInfo",
        "VisualisationResponseFormat",
        "WrongClientModeError",
    ],
    "framepipe.commands": None,
    "framepipe.demo": [
        "CLASS_NAMES",
        "ClipInfo",
        "GroundTruth",
        "make_clip",
        "random_scene",
        "read_truth",
        "scene_frames",
    ],
    "framepipe.models": [
        "BatchingExecutor",
        "DEFAULT_MANAGER",
        "InferenceParameters",
        "Model",
        "ModelLease",
        "ModelManager",
        "ObjectDetectionModel",
        "OnnxModel",
        "StubModel",
        "acquire_model",
        "configure_runtime",
        "create_session",
        "get_model",
        "load_model",
        "runtime_plan",
    ],
    "framepipe.models.heads": [
        "Candidates",
        "DecodeSettings",
        "Head",
        "OutputSpec",
        "choose_head",
        "get_head",
        "heads",
        "register_head",
        "unregister_head",
    ],
    "framepipe.pipeline": [
        "BasePipelineWatchDog",
        "Batching",
        "DispatchConfig",
        "InferencePipeline",
        "LatencyMonitorReport",
        "MetricsConfig",
        "MetricsSnapshot",
        "NullPipelineWatchdog",
        "PREDICTIONS_QUEUE_SIZE",
        "PipelineConfig",
        "PipelineEngine",
        "PipelineSinkError",
        "PipelineSpec",
        "PipelineState",
        "PipelineStateReport",
        "PipelineWatchDog",
        "SinkMode",
        "SinkQueueConfig",
        "SourcesConfig",
        "TrackingConfig",
    ],
    "framepipe.predictions": [
        "Classification",
        "Detections",
        "FramePrediction",
        "RoboflowPrediction",
        "detection_ids",
        "to_payload",
    ],
    "framepipe.server": ["RegistryServer", "RequestRecord", "create_app"],
    "framepipe.server.routes": None,
    "framepipe.sinks": [
        "DEFAULT_ANNOTATORS",
        "DEFAULT_FPS_MONITOR",
        "H264Writer",
        "InMemoryBufferSink",
        "JsonlSink",
        "MJPEGPreviewSink",
        "MultiSink",
        "Sink",
        "UDPSink",
        "VideoFileSink",
        "annotate",
        "as_sink",
        "create_tiles",
        "display_image",
        "multi_sink",
        "pairs",
        "render_boxes",
    ],
    "framepipe.sources": [
        "Backoff",
        "BufferConsumptionStrategy",
        "BufferFillingStrategy",
        "DEFAULT_BUFFER_SIZE",
        "FrameBuffer",
        "ReaderOptions",
        "SourceMetadata",
        "SourceOptions",
        "SourceProperties",
        "StatusUpdate",
        "StreamState",
        "UpdateSeverity",
        "VideoFrame",
        "VideoSource",
        "open_reader",
        "redact",
    ],
}


def test_every_package_is_pinned() -> None:
    packages = {"framepipe"} | {m.name for m in pkgutil.walk_packages(framepipe.__path__, "framepipe.") if m.ispkg}
    assert packages == set(EXPORTS)


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_package_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert (sorted(exported) if exported is not None else None) == EXPORTS[name]
    for attribute in exported or []:
        assert getattr(module, attribute) is not None, f"{name}.{attribute} does not resolve"
