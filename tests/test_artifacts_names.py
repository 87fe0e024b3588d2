"""Issue 14, fault 7: secrets and names. Credentials in ``API_BASE_URL`` never reach the manifest,
the logs or an error; ids are checked exactly (no trailing newline, hand-built ``ModelRef`` too);
a folder in the working directory never shadows a registry model; class names keep what they
hold, ids keep their numbers, and control characters are refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from framepipe.artifacts import ModelRef, fetch_model, load_folder, resolve_model
from framepipe.artifacts.folder import read_class_names
from framepipe.artifacts.model_id import parse_model_id, safe_file_name
from framepipe.artifacts.roboflow_api import parse_ort
from framepipe.errors import (
    InvalidModelIdError,
    MalformedRegistryResponseError,
    ModelArtifactError,
    ModelOfflineError,
    RegistryConnectionError,
    UnsafePathError,
)
from tests.artifacts_support import MODEL_ID, copy_model, files_containing, make_registry, settings_for, start_server

PASSWORD = "hunter2-pass-91c4"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ROBOFLOW_API_KEY", "API_KEY", "API_BASE_URL", "FRAMEPIPE_OFFLINE", "OFFLINE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))


def test_userinfo_in_api_base_url_never_reaches_manifest_logs_or_errors(tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    registry = tmp_path / "registry"
    make_registry(registry)
    cache = tmp_path / "cache"
    with start_server(registry) as server:
        with_userinfo = server.url.replace("http://", f"http://admin:{PASSWORD}@")
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, api_base_url=with_userinfo))
        port = server.url.rsplit(":", 1)[1]
    manifest = (cache / "shapes" / "1" / ".framepipe.json").read_text()
    assert PASSWORD not in manifest and "admin@" not in manifest and f"127.0.0.1:{port}" in manifest
    assert not files_containing(cache, PASSWORD)
    # the registry is gone now: the error names it, without the password
    with pytest.raises(RegistryConnectionError) as error:
        fetch_model("shapes/2", cache_dir=cache, settings=settings_for(server, api_base_url=with_userinfo, retries=0))
    assert PASSWORD not in str(error.value) and f"127.0.0.1:{port}" in str(error.value)
    assert caplog.records and not [r for r in caplog.records if PASSWORD in r.getMessage()]


@pytest.mark.parametrize("bad", ["ds/3\n", "ds\n/3", "ds/3\r", "ds/3\x00"])
def test_ids_with_a_trailing_newline_are_refused(bad) -> None:
    with pytest.raises(InvalidModelIdError):
        parse_model_id(bad)
    with pytest.raises(UnsafePathError):
        safe_file_name("weights.onnx\n")


@pytest.mark.parametrize(("dataset", "version"), [("a", "../b"), ("..", "1"), ("a/b", "1"), ("a", "1\n"), ("", "1")])
def test_hand_built_model_refs_are_checked(dataset, version, tmp_path) -> None:
    with pytest.raises(InvalidModelIdError):
        ModelRef(dataset, version)
    assert ModelRef("a", "1").model_id == "a/1"


def test_a_folder_in_the_working_directory_never_shadows_a_registry_id(tmp_path, monkeypatch) -> None:
    work = tmp_path / "work"
    copy_model(work / "coco" / "3")  # a checked-out folder that happens to be named like the id
    monkeypatch.chdir(work)
    monkeypatch.setenv("FRAMEPIPE_OFFLINE", "1")
    with pytest.raises(ModelOfflineError, match=r"cache"):
        resolve_model("coco/3")  # the registry model, which is not cached: not ./coco/3
    assert resolve_model("./coco/3").folder == (work / "coco" / "3").resolve()  # a path that looks like one


def test_class_names_keep_trailing_blanks_and_empty_names(tmp_path) -> None:
    path = tmp_path / "class_names.txt"
    path.write_text("person \ncar\t\n \n")
    assert read_class_names(path) == ["person ", "car\t", " "]
    path.write_text("a\nb")  # Roboflow writes no final newline
    assert read_class_names(path) == ["a", "b"]


def test_downloaded_class_names_survive_exactly(tmp_path) -> None:
    registry = tmp_path / "registry"
    make_registry(registry)
    names = ["circle ", " square", "triangle", ""]
    (registry / "shapes" / "1" / "class_names.txt").unlink()
    env_path = registry / "shapes" / "1" / "environment.json"
    environment = json.loads(env_path.read_text())
    environment["CLASS_MAP"] = {str(i): n for i, n in enumerate(names)}
    env_path.write_text(json.dumps(environment))
    cache = tmp_path / "cache"
    with start_server(registry) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
    assert load_folder(cache / "shapes" / "1", MODEL_ID).class_names == names


def test_sparse_class_map_keeps_class_ids(tmp_path) -> None:
    folder = copy_model(tmp_path / "m")
    (folder / "class_names.txt").unlink()
    environment = json.loads((folder / "environment.json").read_text())
    environment["CLASS_MAP"] = {"0": "cat", "3": "dog", "1": "bird"}
    (folder / "environment.json").write_text(json.dumps(environment))
    names = load_folder(folder, "m").class_names
    assert names is not None and len(names) == 4
    assert (names[0], names[1], names[3]) == ("cat", "bird", "dog")
    assert names[2] not in ("cat", "bird", "dog")
    environment["CLASS_MAP"] = {"0": "cat", "9" * 5000: "dog"}
    (folder / "environment.json").write_text(json.dumps(environment))
    with pytest.raises(ModelArtifactError, match="CLASS_MAP"):
        load_folder(folder, "m")


@pytest.mark.parametrize("name", ["\x1b[31mred\x1b[0m", "bell\x07", "del\x7f", "nul\x00", "c1\x9b"])
def test_control_characters_in_class_names_are_refused(name, tmp_path) -> None:
    answer = {"ort": {"model": "http://h/w.onnx", "environment": "http://h/e.json", "classes": ["ok", name]}}
    with pytest.raises(MalformedRegistryResponseError, match="control character"):
        parse_ort(answer, parse_model_id("ds/1"), "here")
    folder = copy_model(tmp_path / "m")
    (folder / "class_names.txt").write_text(f"ok\n{name}\n", encoding="utf-8")
    with pytest.raises(ModelArtifactError, match="control character"):
        load_folder(folder, "m")
