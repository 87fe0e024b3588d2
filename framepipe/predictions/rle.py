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


def rle_counts(mask: np.ndarray) -> list[int]:
    """The run lengths of ``mask`` ``(H, W)`` in column-major order, starting with a (maybe
    empty) run of zeros."""
    flat = np.asarray(mask, bool).ravel(order="F")
    if not flat.size:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


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
