"""Every module's doctest examples run as tests (issue 13: they were never run, and 2 failed)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import framepipe

NEEDS_EXTRA = {  # import an optional extra at module level
    name: "torch"
    for name in (
        "framepipe.demo.train",
        "framepipe.demo.train_cls",
        "framepipe.demo.train_common",
        "framepipe.demo.train_pose",
        "framepipe.demo.train_seg",
    )
}
SCRIPTS = {"framepipe.__main__"}  # runs the command line when imported
MODULES = sorted(m.name for m in pkgutil.walk_packages(framepipe.__path__, "framepipe.") if m.name not in SCRIPTS)


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str, tmp_path, monkeypatch) -> None:
    if name in NEEDS_EXTRA:
        pytest.importorskip(NEEDS_EXTRA[name])
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
