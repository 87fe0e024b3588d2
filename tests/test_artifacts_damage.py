"""Issue 14, faults 5 and 6: a damaged manifest means "corrupt: download again when online" (never
a raw exception, never a cache that stops healing), and the failures of a full disk, a read-only
cache and a broken journal are framepipe errors that say what to do."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from framepipe.artifacts import ModelCache, fetch_model
from framepipe.artifacts.cache import CacheState
from framepipe.artifacts.manifest import JOURNAL_NAME, MANIFEST_NAME
from framepipe.cli import main
from framepipe.errors import ModelCacheError, ModelOfflineError
from tests.artifacts_support import (
    MODEL_ID,
    REPO,
    SOURCE,
    copy_model,
    make_registry,
    settings_for,
    sha256,
    start_server,
)

WEIGHTS_SHA = sha256(SOURCE / "weights.onnx")


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


DAMAGE = {
    "non-utf8-byte": lambda path: path.write_bytes(path.read_bytes().replace(b'"files"', b'"fil\xffes"')),
    "folder-in-its-place": lambda path: (path.unlink(), path.mkdir(), (path / "x").write_text("x")),
    "deeply-nested": lambda path: path.write_bytes(_nested(100_000)),
    "5000-digit-number": lambda path: path.write_bytes(
        path.read_bytes().replace(b'"size": ', b'"size": ' + b"9" * 5000 + b', "was": ', 1)
    ),
    "negative-size": lambda path: path.write_text(path.read_text().replace('"size": ', '"size": -', 1)),
    "not-an-object": lambda path: path.write_text("[]"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_manifest_reads_as_corrupt_and_heals_online(damage, tmp_path, capsys, monkeypatch) -> None:
    registry = tmp_path / "registry"
    make_registry(registry)
    cache = tmp_path / "cache"
    copy_model(cache / "other" / "2")  # another model, which must still be listed
    with start_server(registry) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        DAMAGE[damage](cache / "shapes" / "1" / MANIFEST_NAME)
        states = {e.model_id: e.state for e in ModelCache(cache).entries()}
        assert states == {MODEL_ID: CacheState.CORRUPT, "other/2": CacheState.FOREIGN}
        monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))
        assert main(["cache", "list"]) == 0
        out = capsys.readouterr().out
        assert "CORRUPT" in out and "other/2" in out
        with pytest.raises(ModelOfflineError, match=r"damaged"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, offline=True))
        again = fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert again.downloaded and again.state is CacheState.COMPLETE
        assert server.count("file", "weights.onnx") == 2
    assert ModelCache(cache).verify(MODEL_ID).state is CacheState.COMPLETE
    assert sha256(cache / "shapes" / "1" / "weights.onnx") == WEIGHTS_SHA


def test_a_journal_entry_without_size_is_downloaded_again(tmp_path) -> None:
    registry = tmp_path / "registry"
    make_registry(registry)
    cache = tmp_path / "cache"
    folder = cache / "shapes" / "1"
    with start_server(registry) as server:
        fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        files = json.loads((folder / MANIFEST_NAME).read_text())["files"]
        del files["weights.onnx"]["size"]
        journal = {"model_id": MODEL_ID, "phase": "commit", "source": "", "files": files}
        (folder / JOURNAL_NAME).write_text(json.dumps(journal))
        (folder / MANIFEST_NAME).unlink()
        with pytest.raises(ModelOfflineError, match="interrupted"):
            fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server, offline=True))
        result = fetch_model(MODEL_ID, cache_dir=cache, settings=settings_for(server))
        assert result.state is CacheState.COMPLETE and server.count("file", "weights.onnx") == 2


def test_verify_and_prune_of_a_cache_that_cannot_be_written_say_so(tmp_path, capsys, monkeypatch) -> None:
    cache = tmp_path / "baked"
    copy_model(cache / "shapes" / "1")
    (cache / "_file_locks").write_text("not a folder: nothing can be locked or written here")
    with pytest.raises(ModelCacheError, match=r"cannot .*lock.*_file_locks.*writable"):
        ModelCache(cache).verify(MODEL_ID)
    with pytest.raises(ModelCacheError, match=r"cannot .*lock.*_file_locks.*writable"):
        ModelCache(cache).prune(0)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))
    assert main(["cache", "verify"]) == 2 and main(["cache", "prune", "--max-size", "0"]) == 2
    assert "writable" in capsys.readouterr().err
    assert (cache / "shapes" / "1" / "weights.onnx").exists()


DISK_FULL = """
import resource, signal, sys
sys.path.insert(0, sys.argv[3])
from tests.artifacts_support import settings_for
from framepipe.artifacts import fetch_model
from framepipe.artifacts.settings import RegistrySettings
from framepipe.errors import FramepipeError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
settings = RegistrySettings(api_base_url=sys.argv[1], api_base_url_is_default=False, api_key="sk-test-7f3a9c0b1d2e4f5a",
                            device_id="t", retries=0)
try:
    fetch_model("shapes/1", cache_dir=sys.argv[2], settings=settings)
except FramepipeError as error:
    print(type(error).__name__, error)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_is_a_cache_error_naming_the_folder(tmp_path) -> None:
    registry = tmp_path / "registry"
    make_registry(registry)
    cache = tmp_path / "cache"
    with start_server(registry) as server:
        child = subprocess.run(
            [sys.executable, "-c", DISK_FULL, server.url, str(cache), str(REPO)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.startswith("ModelCacheError cannot write"), child.stdout + child.stderr[-2000:]
    assert "MODEL_CACHE_DIR" in child.stdout
    assert not ModelCache(cache).inspect(MODEL_ID).state.usable
