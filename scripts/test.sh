#!/usr/bin/env bash
# framepipe's whole test suite, as CI runs it: installs what the tests need into .venv (made if
# missing; an already active virtual environment is used instead), then ruff, mypy, the import
# contracts (import-linter) and pytest, module doctests included (tests/test_doctests.py).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k pipeline`.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages for the tests, installed only when missing: GStreamer's RTSP server (run by
# Debian's own Python) and ffprobe.
rtsp_server_ready() {
  /usr/bin/python3 - <<'PY' 2>/dev/null
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
assert all(Gst.ElementFactory.find(name) for name in ("filesrc", "qtdemux", "h264parse", "rtph264pay"))
PY
}
# ffprobe (Debian's ffmpeg) checks the MP4 files the tests write, as a user's tools would read them.
if ! rtsp_server_ready || ! command -v ffprobe >/dev/null; then
  echo "== installing GStreamer's RTSP server and ffmpeg for the tests (Debian packages)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    python3 python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad ffmpeg
  rtsp_server_ready || { echo "GStreamer's RTSP server is still not usable" >&2; exit 1; }
  command -v ffprobe >/dev/null || { echo "ffprobe is still missing" >&2; exit 1; }
fi

if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

python -m pip install --quiet --disable-pip-version-check --upgrade pip
python -m pip install --quiet --disable-pip-version-check -e '.[test]'

# Roboflow's inference-sdk, for tests/test_inference_sdk.py: it pins numpy, OpenCV and Pillow versions
# that differ from framepipe's, so it gets its own environment, .venv-sdk (made when missing), and the
# test runs the SDK there in a subprocess. FRAMEPIPE_REQUIRE_SDK makes that test fail, not skip,
# when the environment is missing.
INFERENCE_SDK_VERSION="1.8.3"
if [ ! -x .venv-sdk/bin/python ] || ! .venv-sdk/bin/python -c "import inference_sdk" 2>/dev/null; then
  echo "== making .venv-sdk (inference-sdk==${INFERENCE_SDK_VERSION}, for the compatibility tests)"
  rm -rf .venv-sdk
  "${PYTHON:-python3}" -m venv .venv-sdk
  .venv-sdk/bin/python -m pip install --quiet --disable-pip-version-check "inference-sdk==${INFERENCE_SDK_VERSION}"
fi
export FRAMEPIPE_REQUIRE_SDK=1

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
mypy
echo "== import contracts (layers, onnxruntime and av in their corners)"
lint-imports
echo "== pytest"
python -m pytest -q "$@"
