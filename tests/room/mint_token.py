"""Mint a LiveKit access token (HS256 JWT) for the test room.

usage: mint_token.py --key devkey --secret S --identity ID --room R [--kind agent] [--attr k=v ...] [--ttl 3600]
"""
import argparse
import base64
import hashlib
import hmac
import json
import time


def b64(b: bytes) -> bytes:
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def mint(key, secret, identity, room, kind="", attributes=None, ttl=3600, name=None):
    now = int(time.time())
    claims = {
        "iss": key, "sub": identity, "name": name or identity, "nbf": now - 5, "exp": now + ttl,
        "video": {"roomJoin": True, "room": room, "canPublish": True, "canSubscribe": True, "canPublishData": True},
    }
    if kind:
        claims["kind"] = kind
    if attributes:
        claims["attributes"] = attributes
    msg = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    return (msg + b"." + b64(hmac.new(secret.encode(), msg, hashlib.sha256).digest())).decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", default="devkey")
    ap.add_argument("--secret", required=True)
    ap.add_argument("--identity", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--kind", default="")
    ap.add_argument("--attr", action="append", default=[], help="k=v participant attribute")
    ap.add_argument("--ttl", type=int, default=3600)
    a = ap.parse_args()
    attrs = dict(kv.split("=", 1) for kv in a.attr)
    print(mint(a.key, a.secret, a.identity, a.room, a.kind, attrs, a.ttl))


if __name__ == "__main__":
    main()
