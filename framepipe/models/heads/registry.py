"""The registry of heads, and the choice of a head for a model.

Every module of ``framepipe.models.heads`` is imported on first use and registers its heads with
``register_head``; a head defined anywhere else (a plugin) registers the same way. Nothing else in
framepipe names a layout, so a new layout is one new module.

The choice, in order: a ``model_type`` (Roboflow's ``model_type.json``) that a head claims; else
the head that fits the outputs best (Ultralytics metadata such as ``task`` and ``end2end`` counts,
then the shapes). No fit, a tie, or a ``model_type`` whose layout the outputs contradict raise
``UnsupportedModelOutputError`` with the shapes found.

Example:
    >>> from framepipe.models.heads import choose_head
    >>> from framepipe.models.heads.base import OutputSpec
    >>> head, reason = choose_head(OutputSpec([["batch", 84, "anchors"]], ["output0"], metadata={"task": "detect"}))
    >>> head.name, reason
    ('yolov8', "output shapes output0 ['batch', 84, 'anchors'] (exported for task 'detect')")
"""

from __future__ import annotations

import importlib
import pkgutil
import threading

from framepipe.errors import UnsupportedModelOutputError
from framepipe.models.heads.base import NO, Head, OutputSpec

_HEADS: dict[str, Head] = {}
_LOCK = threading.Lock()
_DISCOVERED = False
_NOT_HEADS = {"base", "registry"}


def register_head(head: Head) -> Head:
    """Add ``head`` to the registry (a later head of the same name replaces the earlier one)."""
    with _LOCK:
        _HEADS[head.name] = head
    return head


def unregister_head(name: str) -> None:
    """Remove the head called ``name`` (for plugins and tests)."""
    with _LOCK:
        _HEADS.pop(name, None)


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    package = importlib.import_module("framepipe.models.heads")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_HEADS:
            importlib.import_module(f"{package.__name__}.{module.name}")
    _DISCOVERED = True


def heads() -> list[Head]:
    """Every registered head, in registry order."""
    _discover()
    with _LOCK:
        return sorted(_HEADS.values(), key=lambda h: (h.priority, h.name))


def get_head(name: str) -> Head:
    """The head called ``name``."""
    for head in heads():
        if head.name == name:
            return head
    raise KeyError(f"no head called {name!r}; known: {[h.name for h in heads()]}")


def _layouts() -> str:
    return ", ".join(f"{h.layout}" for h in heads())


def choose_head(spec: OutputSpec) -> tuple[Head, str]:
    """The head for a model's outputs, and why it was chosen."""
    registered = heads()
    task = spec.project_task
    if task is not None:  # a task Roboflow or Ultralytics names: only its layouts
        registered = [h for h in registered if h.task == task]
        if not registered:
            raise UnsupportedModelOutputError(f"no decoder for the task {task!r}; outputs: {spec.shown}")
    if spec.model_type:
        claimed = [h for h in registered if h.claims(spec.model_type)]
        if claimed:
            fitting = [h for h in claimed if h.fits(spec.without_classes()) > NO]  # the caller checks the class count
            if not fitting:
                names = ", ".join(h.name for h in claimed)
                raise UnsupportedModelOutputError(
                    f"model_type {spec.model_type!r} means the {names} layout, "
                    f"but the model's outputs are: {spec.shown}"
                )
            return fitting[0], f"model_type {spec.model_type!r}"
    scored = [(h.fits(spec), h) for h in registered]
    if not any(score > NO for score, _ in scored) and spec.num_classes is not None:
        scored = [(h.fits(spec.without_classes()), h) for h in registered]  # wrong class names: the caller says so
    best = max((score for score, _ in scored), default=NO)
    if best == NO:
        raise UnsupportedModelOutputError(f"no decoder knows these outputs: {spec.shown}; framepipe reads {_layouts()}")
    winners = [h for score, h in scored if score == best]
    if len(winners) > 1:
        tied = ", ".join(h.name for h in winners)
        raise UnsupportedModelOutputError(
            f"outputs {spec.shown} fit several layouts ({tied}): add a model_type.json that says which"
        )
    reason = f"output shapes {spec.shown}" + (f" (exported for task {spec.task!r})" if spec.task else "")
    return winners[0], reason
