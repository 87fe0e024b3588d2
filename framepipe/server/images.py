"""Input images of the inference server: base64, URL and raw bytes to BGR ``uint8`` arrays, with a pixel
cap checked from the file's header before anything is decoded (a decompression bomb costs nothing), and
URL downloads under Roboflow's rules (``ALLOW_URL_INPUT``, ``ALLOW_NON_HTTPS_URL_INPUT``) plus a size
cap, a timeout and no redirect to another scheme. Pickled numpy input is refused, as Roboflow's default.

These functions block (they are run on the server's worker threads, never on the event loop) and raise
``framepipe.errors`` classes whose messages are safe to send back.

Example:
    >>> import base64, cv2, numpy as np
    >>> from framepipe.server.images import decode_bytes, image_size
    >>> png = cv2.imencode(".png", np.zeros((20, 30, 3), np.uint8))[1].tobytes()
    >>> image_size(png), decode_bytes(png, max_pixels=10_000).shape
    ((30, 20), (20, 30, 3))
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import cv2
import numpy as np
import requests

from framepipe.errors import ImageDownloadError, ImageTooLargeError, InputNotAllowedError, InvalidImageError

_DATA_URL = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,")
_MAX_REDIRECTS = 3


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG, PNG, BMP or WebP header; ``None`` for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(int(width)), abs(int(height))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if kind == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8X":
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        return None
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index, end = 2, len(data)
    while index + 4 <= end:
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            if index + 9 > end:
                return None
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width), int(height)
        if length < 2:
            return None
        index += 2 + length
    return None


def decode_bytes(data: bytes, max_pixels: int) -> np.ndarray:
    """A BGR ``uint8`` image from encoded bytes (JPEG, PNG, BMP, WebP), refused when its header
    announces more than ``max_pixels`` pixels or it does not decode."""
    if not data:
        raise InvalidImageError("the image is empty")
    size = image_size(data)
    if size is None:
        raise InvalidImageError("the image is not a JPEG, PNG, BMP or WebP file (or its header is damaged)")
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"the image is {width}x{height} pixels; this server takes at most {max_pixels}")
    if width == 0 or height == 0:
        raise InvalidImageError(f"the image is {width}x{height} pixels")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] * image.shape[1] > max_pixels:
        raise InvalidImageError("the image could not be decoded (corrupt or truncated)")
    return image


def decode_base64(value: str | bytes, max_pixels: int) -> np.ndarray:
    """A BGR image from base64 text (a ``data:image/...;base64,`` prefix is allowed)."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    text = _DATA_URL.sub("", text.strip(), count=1)
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise InvalidImageError("the image value is not valid base64") from None
    return decode_bytes(data, max_pixels)


class UrlFetcher:
    """Downloads URL inputs under the server's rules (see the module docstring)."""

    def __init__(self, allow: bool, allow_non_https: bool, max_bytes: int, timeout_s: float) -> None:
        self.allow, self.allow_non_https = allow, allow_non_https
        self.max_bytes, self.timeout_s = max_bytes, timeout_s

    def check(self, url: str) -> str:
        """``url`` if it may be fetched, else ``InputNotAllowedError`` saying which rule refused it."""
        if not self.allow:
            raise InputNotAllowedError("URL inputs are disabled on this server (ALLOW_URL_INPUT=False)")
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise InputNotAllowedError(f"URL inputs must be http(s) URLs, not {scheme or 'scheme-less'} ones")
        if scheme == "http" and not self.allow_non_https:
            raise InputNotAllowedError("only https URL inputs are allowed (ALLOW_NON_HTTPS_URL_INPUT=False)")
        if not urlsplit(url).hostname:
            raise InputNotAllowedError("the URL input has no host")
        return url

    def fetch(self, url: str, session: Any = None) -> bytes:
        """The body at ``url``: at most ``max_bytes``, within ``timeout_s`` in all, following at most
        three redirects, each checked as the first URL (so never from https to http unless allowed,
        never to another scheme)."""
        deadline = time.monotonic() + self.timeout_s
        http = session or requests
        current = self.check(url)
        for _ in range(_MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                response = http.get(current, stream=True, timeout=left, allow_redirects=False)
            except requests.Timeout:
                raise ImageDownloadError(f"the URL input did not answer within {self.timeout_s:g} s") from None
            except requests.RequestException:
                raise ImageDownloadError("the URL input could not be fetched (connection failed)") from None
            with response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("location", ""))
                    if current.lower().startswith("https:") and not target.lower().startswith("https:"):
                        raise InputNotAllowedError("the URL input redirects away from https")
                    current = self.check(target)
                    continue
                if response.status_code != 200:
                    raise ImageDownloadError(f"the URL input answered HTTP {response.status_code}")
                return self._read(response, deadline)
        raise ImageDownloadError("the URL input redirected too often or took too long")

    def _read(self, response: Any, deadline: float) -> bytes:
        announced = response.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > self.max_bytes:
            raise ImageTooLargeError(f"the URL input is {announced} bytes; this server takes at most {self.max_bytes}")
        chunks, total = [], 0
        try:
            for chunk in response.iter_content(64 * 1024):
                total += len(chunk)
                if total > self.max_bytes:
                    raise ImageTooLargeError(f"the URL input is larger than {self.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise ImageDownloadError(f"the URL input was not downloaded within {self.timeout_s:g} s")
                chunks.append(chunk)
        except requests.RequestException:
            raise ImageDownloadError("the URL input's download broke off") from None
        return b"".join(chunks)


def load_image(kind: str, value: Any, max_pixels: int, fetcher: UrlFetcher) -> np.ndarray:
    """One ``{type, value}`` input of Roboflow's request bodies as a BGR image."""
    if kind == "base64":
        if not isinstance(value, (str, bytes)):
            raise InvalidImageError("a base64 image's value must be a string")
        return decode_base64(value, max_pixels)
    if kind == "url":
        if not isinstance(value, str):
            raise InvalidImageError("a URL image's value must be a string")
        return decode_bytes(fetcher.fetch(value), max_pixels)
    if kind in ("numpy", "numpy_object", "pil", "file", "multipart"):
        raise InputNotAllowedError(f"image type {kind!r} is refused: send base64 or a URL (pickled input is unsafe)")
    raise InvalidImageError(f"unknown image type {kind!r}; use 'base64' or 'url'")
