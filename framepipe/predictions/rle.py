"""COCO run-length encoding of boolean masks (``{"size": [H, W], "counts": str}``), as
pycocotools writes it: runs over the column-major pixels, zeros first, in COCO's compressed
string form. Roboflow's ``response_mask_format="rle"`` sends this.

Example:
    >>> import numpy as np
    >>> from framepipe.predictions.rle import rle_counts, rle_encode
    >>> mask = np.zeros((3, 4), bool)
    >>> mask[1:, 1:3] = True
    >>> rle_counts(mask), rle_encode(mask)
    ([4, 2, 1, 2, 3], {'size': [3, 4], 'counts': '42102'})
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _runs(flat: np.ndarray) -> list[int]:
    if not flat.size:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


def rle_counts(mask: np.ndarray) -> list[int]:
    """The run lengths of ``mask`` ``(H, W)`` in column-major order, starting with a (maybe
    empty) run of zeros."""
    return _runs(np.asarray(mask, bool).ravel(order="F"))


def window_counts(window: np.ndarray, top: int, left: int, size: tuple[int, int]) -> list[int]:
    """``rle_counts`` of a ``size`` (H, W) mask that is ``window`` at ``top, left`` and false
    elsewhere, made from the window's columns only (no full-frame mask).

    Example:
        >>> import numpy as np
        >>> frame = np.zeros((4, 5), bool)
        >>> frame[1:3, 2:4] = [[True, False], [True, True]]
        >>> window_counts(frame[1:3, 2:4], 1, 2, (4, 5)) == rle_counts(frame)
        True
    """
    height, width = size
    rows, cols = window.shape
    columns = np.zeros((cols, height), bool)
    columns[:, top : top + rows] = np.asarray(window, bool).T
    counts = _runs(columns.ravel()) or [0]
    counts[0] += left * height
    after = (width - left - cols) * height
    if after:
        if len(counts) % 2:  # the last run is of zeros
            counts[-1] += after
        else:
            counts.append(after)
    return counts


def counts_string(counts: list[int]) -> str:
    """COCO's compressed form of run lengths (pycocotools' ``rleToString``): each run, less the
    run two before it from the third on, in 5-bit groups with a continuation bit, offset by 48."""
    out = []
    for index, count in enumerate(counts):
        value = count - counts[index - 2] if index > 2 else count
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = value != -1 if chunk & 0x10 else value != 0
            if more:
                chunk |= 0x20
            out.append(chr(chunk + 48))
    return "".join(out)


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """``mask`` ``(H, W)`` as COCO RLE: ``{"size": [H, W], "counts": str}``."""
    height, width = mask.shape
    return {"size": [int(height), int(width)], "counts": counts_string(rle_counts(mask))}


def rle_encode_window(window: np.ndarray, top: int, left: int, size: tuple[int, int]) -> dict[str, Any]:
    """COCO RLE of a ``size`` (H, W) mask that is ``window`` at ``top, left``, false elsewhere."""
    return {"size": [int(size[0]), int(size[1])], "counts": counts_string(window_counts(window, top, left, size))}
