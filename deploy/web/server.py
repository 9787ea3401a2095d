"""The demo's web page and its token endpoint, with the Python standard library only.

  GET /                       index.html (joins a room with livekit-client and shows the avatar)
  GET /livekit-client.umd.js  LiveKit's browser SDK: the file beside this script (the image copies it there from the
                              pinned npm package), else node_modules/livekit-client/dist/ after `npm ci` here
                              (running from a checkout)
  GET /token?room=NAME        {"url", "token", "room", "identity"}: a one-hour viewer token for NAME
  GET /healthz                "ok"

Environment: LIVEKIT_API_KEY, LIVEKIT_API_SECRET (the LiveKit server's keys; the demo's dev keys by default),
LIVEKIT_PUBLIC_URL (the LiveKit URL as the browser must reach it; default ws://<host of this page>:7880),
PORT (default 8080). For a demo only: anyone who can reach this page can join any room.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
API_KEY = os.environ.get("LIVEKIT_API_KEY", "devkey")
API_SECRET = os.environ.get("LIVEKIT_API_SECRET", "secret")
PUBLIC_URL = os.environ.get("LIVEKIT_PUBLIC_URL", "")
TOKEN_TTL = 3600
ROOM_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SDK = "livekit-client.umd.js"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    f"/{SDK}": (SDK, "text/javascript; charset=utf-8"),
}


def static_file(name: str) -> Path:
    """Where a static file is: beside this script, or (the SDK, in a checkout after `npm ci`) in node_modules."""
    path = HERE / name
    if name == SDK and not path.is_file():
        path = HERE / "node_modules" / "livekit-client" / "dist" / SDK
    return path


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def viewer_token(room: str, identity: str, now: int | None = None) -> str:
    """A LiveKit access token (HS256 JWT) that may join `room`, subscribe, and publish a microphone."""
    now = int(time.time()) if now is None else now
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iss": API_KEY,
        "sub": identity,
        "name": identity,
        "nbf": now - 10,
        "exp": now + TOKEN_TTL,
        "video": {
            "room": room,
            "roomJoin": True,
            "canSubscribe": True,
            "canPublish": True,  # the microphone, for talking to an agent that has an LLM
            "canPublishData": True,
        },
    }
    signing_input = f"{b64url(json.dumps(header, separators=(',', ':')).encode())}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
    signature = hmac.new(API_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def public_url(host_header: str | None) -> str:
    if PUBLIC_URL:
        return PUBLIC_URL
    host = (host_header or "localhost").strip()
    if host.startswith("["):  # [v6]:port
        host = host[: host.find("]") + 1]
    else:
        host = host.rsplit(":", 1)[0]
    return f"ws://{host or 'localhost'}:7880"


class Handler(BaseHTTPRequestHandler):
    server_version = "lipcast-demo-web"

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        if url.path in STATIC:
            name, ctype = STATIC[url.path]
            try:
                body = static_file(name).read_bytes()
            except FileNotFoundError:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not_found",
                                                  "detail": f"{name} is missing: run `npm ci` in deploy/web"})
                return
            self._send(HTTPStatus.OK, body, ctype)
        elif url.path == "/token":
            room = parse_qs(url.query).get("room", ["lipcast-demo"])[0]
            if not ROOM_RE.match(room):
                self._json(HTTPStatus.BAD_REQUEST, {"error": "bad_room", "detail": "room: 1-64 of A-Z a-z 0-9 _ -"})
                return
            identity = f"viewer-{secrets.token_hex(4)}"
            self._json(HTTPStatus.OK, {
                "url": public_url(self.headers.get("Host")),
                "token": viewer_token(room, identity),
                "room": room,
                "identity": identity,
            })
        elif url.path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found", "detail": "no such page"})


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    print(f"lipcast demo page on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
