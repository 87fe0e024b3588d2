"""Images for the client: what ``infer`` accepts (a path, an http(s) URL, base64 text, encoded
bytes, a BGR numpy image, a PIL image) turned into base64 for the request, optionally shrunk to
fit the model's input first (``downsize``), and predictions on a shrunk image scaled back to the
image the caller gave (``scale_back``).

Example:
    >>> import numpy as np
    >>> from framepipe.client.images import prepare_image, scale_back
    >>> prepared = prepare_image(np.zeros((720, 1280, 3), np.uint8), max_size=(640, 640))
    >>> prepared.original_wh, prepared.sent_wh
    ((1280, 720), (640, 360))
    >>> result = {"image": {"width": 640, "height": 360},
    ...           "predictions": [{"x": 320.0, "y": 180.0, "width": 64.0, "height": 36.0}]}
    >>> scale_back(result, prepared)["predictions"][0]
    {'x': 640.0, 'y': 360.0, 'width': 128.0, 'height': 72.0}
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import cv2
import numpy as np
import requests

from framepipe.client.entities import VisualisationResponseFormat
from framepipe.client.errors import EncodingError, InvalidInputFormatError

ImagesReference = Any
"""A BGR ``numpy`` image, a ``PIL.Image.Image``, a path, an http(s) URL, base64 text or encoded bytes."""
URL_TIMEOUT_S = 30.0
MAX_URL_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PreparedImage:
    """One image ready to send: ``value`` (base64), the size the caller's image has and the size
    sent (the same unless downsized; None where the image was sent as it came, undecoded)."""

    value: str
    original_wh: tuple[int, int] | None = None
    sent_wh: tuple[int, int] | None = None

    @property
    def downsized(self) -> bool:
        return self.original_wh is not None and self.sent_wh is not None and self.original_wh != self.sent_wh


def is_pil_image(value: Any) -> bool:
    """True for a ``PIL.Image.Image`` (checked without importing Pillow)."""
    return type(value).__module__.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "size")


def is_url(reference: str) -> bool:
    return reference.startswith(("http://", "https://"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _jpeg(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image)
    if not ok:
        raise EncodingError(f"could not encode an image of shape {image.shape} and dtype {image.dtype} as JPEG")
    return encoded.tobytes()


def _decode(data: bytes, what: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise EncodingError(f"{what} is not an image that OpenCV can decode")
    return image


def _fit(width: int, height: int, max_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size to shrink ``width`` x ``height`` to so that it fits ``max_size`` (width, height),
    keeping the aspect ratio, or None when it fits already."""
    if max_size is None:
        return None
    ratio = min(max_size[0] / width, max_size[1] / height)
    if ratio >= 1.0:
        return None
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _from_array(image: np.ndarray, max_size: tuple[int, int] | None) -> PreparedImage:
    if image.ndim not in (2, 3) or image.size == 0:
        raise InvalidInputFormatError(f"a numpy image must be HxW or HxWxC and not empty, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InvalidInputFormatError(f"a numpy image must be uint8 (BGR, 0-255), got {image.dtype}")
    height, width = image.shape[:2]
    target = _fit(width, height, max_size)
    if target is not None:
        image = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
    return PreparedImage(_b64(_jpeg(image)), (width, height), target or (width, height))


def _from_bytes(data: bytes, max_size: tuple[int, int] | None, what: str) -> PreparedImage:
    if max_size is None:
        return PreparedImage(_b64(data))
    image = _decode(data, what)
    height, width = image.shape[:2]
    if _fit(width, height, max_size) is None:
        return PreparedImage(_b64(data), (width, height), (width, height))
    return _from_array(image, max_size)


def _from_pil(image: Any, max_size: tuple[int, int] | None) -> PreparedImage:
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    width, height = image.size
    target = _fit(width, height, max_size)
    if target is not None:
        image = image.resize(target)
    with BytesIO() as buffer:
        image.save(buffer, format="JPEG")
        return PreparedImage(_b64(buffer.getvalue()), (width, height), target or (width, height))


def download(url: str, timeout_s: float = URL_TIMEOUT_S, max_bytes: int = MAX_URL_BYTES) -> bytes:
    """The bytes at an http(s) URL (as ``inference_sdk`` does, images given by URL are fetched
    here and sent as base64); at most ``max_bytes``."""
    try:
        with requests.get(url, timeout=timeout_s, stream=True) as response:
            if response.status_code != 200:
                raise EncodingError(f"could not download the image at {url}: HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_content(1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise EncodingError(f"the image at {url} is larger than {max_bytes} bytes")
                chunks.append(chunk)
    except requests.RequestException as error:
        raise EncodingError(f"could not download the image at {url}: {type(error).__name__}") from None
    return b"".join(chunks)


def prepare_image(reference: ImagesReference, max_size: tuple[int, int] | None = None) -> PreparedImage:
    """``reference`` as base64 for a request; shrunk to fit ``max_size`` (width, height) when given."""
    if isinstance(reference, np.ndarray):
        return _from_array(reference, max_size)
    if is_pil_image(reference):
        return _from_pil(reference, max_size)
    if isinstance(reference, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(reference), max_size, "the bytes given")
    if isinstance(reference, os.PathLike):
        reference = os.fspath(reference)
    if not isinstance(reference, str):
        raise InvalidInputFormatError(
            f"Unknown type of input ({type(reference).__name__}): give a path, an http(s) URL, base64 text, "
            "encoded bytes, a BGR numpy image or a PIL image"
        )
    if is_url(reference):
        return _from_bytes(download(reference), max_size, f"the file at {reference}")
    if len(reference) < 4096 and os.path.isfile(reference):
        with open(reference, "rb") as file:
            return _from_bytes(file.read(), max_size, reference)
    text = reference.split(",", 1)[1] if reference.startswith("data:") and "," in reference else reference
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputFormatError(
            f"{reference[:80]!r} is neither an existing file, an http(s) URL nor base64 image data"
        ) from None
    if not data:
        raise InvalidInputFormatError("an empty string is not an image")
    return _from_bytes(data, max_size, "the base64 image") if max_size is not None else PreparedImage(text)


def _scale_box(prediction: dict[str, Any], sx: float, sy: float) -> None:
    for key, factor in (("x", sx), ("y", sy), ("width", sx), ("height", sy)):
        if isinstance(prediction.get(key), (int, float)):
            prediction[key] = prediction[key] * factor
    for key in ("points", "keypoints"):
        for point in prediction.get(key) or ():
            if isinstance(point, dict):
                point["x"] = point["x"] * sx
                point["y"] = point["y"] * sy


def scale_back(result: dict[str, Any], prepared: PreparedImage) -> dict[str, Any]:
    """``result`` of a downsized image in the caller's image pixels: boxes, polygon points and
    keypoints; ``image`` gets the caller's size. (RLE masks stay at the size sent.)"""
    if not prepared.downsized or not isinstance(result, dict) or result.get("is_stub"):
        return result
    assert prepared.original_wh is not None and prepared.sent_wh is not None
    (width, height), (sent_w, sent_h) = prepared.original_wh, prepared.sent_wh
    sx, sy = width / sent_w, height / sent_h
    if isinstance(result.get("image"), dict):
        result["image"] = {"width": width, "height": height}
    predictions = result.get("predictions")
    if isinstance(predictions, list):
        for prediction in predictions:
            if isinstance(prediction, dict):
                _scale_box(prediction, sx, sy)
    return result


def convert_visualisation(value: Any, expected: VisualisationResponseFormat) -> Any:
    """A visualisation (base64 text or JPEG bytes) in the ``expected`` format."""
    if value is None:
        return None
    if expected is VisualisationResponseFormat.BASE64:
        return value if isinstance(value, str) else _b64(bytes(value))
    data = base64.b64decode(value) if isinstance(value, str) else bytes(value)
    if expected is VisualisationResponseFormat.NUMPY:
        return _decode(data, "the visualisation")
    from PIL import Image

    return Image.open(BytesIO(data))
