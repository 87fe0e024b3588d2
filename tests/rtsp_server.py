"""A real RTSP server for framepipe's tests: GStreamer's RTSP server serving an H.264 MP4 file.

Runs under Debian's own Python (``/usr/bin/python3``, with ``python3-gi``), not the project's
virtual environment:

    /usr/bin/python3 tests/rtsp_server.py --file clip.mp4 --port 8554 [--user U --password P]

Every client gets the file from its first frame, played at its own frame rate (the RTP sink
keeps to the clock), over RTSP/TCP or UDP, at ``rtsp://127.0.0.1:PORT/live``. It prints
``READY`` once it listens.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/live")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.file.replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )'
    )
    factory.set_shared(False)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = Gst.Structure.new_empty("viewer")
        permissions.set_value("media.factory.access", True)
        permissions.set_value("media.factory.construct", True)
        factory.add_role_from_structure(permissions)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print("READY", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
