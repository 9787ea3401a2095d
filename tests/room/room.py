"""A LiveKit-protocol test room for several participants (single peer connection, `/rtc/v1`).

It speaks what real LiveKit clients (LiveKit's engine, i.e. the Rust/Python SDKs) need to join, publish and
exchange data, and it records what it receives so tests can assert on it:

- HS256 JWT from `Authorization: Bearer` (401 otherwise), `/rtc/v1` join (and `/rtc/v1/validate`);
- JoinResponse with the other participants, `participant_update` to the others on join, publish and leave;
- answers to offers, trickle, `add_track` -> `track_published`, `ping_req` -> `pong_resp`, `leave`;
- DataPackets on `_reliable`/`_lossy` relayed by `destination_identities` (byte/text streams, inline or
  compressed, RPC v1 packets and RPC over text streams are relayed the same, opaquely);
- REMB feedback of a fast local SFU on every received video stream;
- decodes received video (count, timestamps, resolution, a few PNGs) and records audio to WAV;
- a JSON report, rewritten twice a second and at exit.

Control (plain HTTP GET on the same port): `/control/record?on=1|0` (per-frame recording windows), `/health`.
Only the tests that need the sender's clock use this room (tests/room/README.md); the rest run through the real
livekit-server.

usage: room.py --host 10.77.0.1 --port 7880 --secret S --report out/report.json --out-dir out
"""
import argparse
import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import os
import secrets
import signal
import struct
import sys
import time
import urllib.parse
import wave
import zlib
from http import HTTPStatus

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import rtcrtpreceiver
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci
from aiortc.sdp import candidate_from_sdp
from livekit.protocol import models, rtc
from websockets.asyncio.server import serve

T0 = time.monotonic()
T0_UNIX = time.time()
REMB_BPS = 8_000_000
START_KBPS = 2500
MIN_KBPS = 1000
KINDS = {"": 0, "standard": 0, "ingress": 1, "egress": 2, "sip": 3, "agent": 4, "connector": 5, "bridge": 6}


def now() -> float:
    return round(time.monotonic() - T0, 4)


def log(*a):
    print(f"[room {now():7.2f}s]", *a, file=sys.stderr, flush=True)


# Sender reports (RTCP SR) map each stream's RTP timestamps to the sender's wall clock: that mapping is what a
# browser uses for lip sync, so it is recorded per receiver and tests compute A/V alignment from it.
_orig_handle_rtcp = rtcrtpreceiver.RTCRtpReceiver._handle_rtcp_packet


async def _recording_handle_rtcp(self, packet):
    if isinstance(packet, rtcrtpreceiver.RtcpSrPacket):
        ntp = packet.sender_info.ntp_timestamp
        sr = self.__dict__.setdefault("_lipcast_sr", [])
        sr.append([(ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32, packet.sender_info.rtp_timestamp, now()])
        del sr[:-64]
    return await _orig_handle_rtcp(self, packet)


rtcrtpreceiver.RTCRtpReceiver._handle_rtcp_packet = _recording_handle_rtcp


def rtp_origin(receiver):
    """aiortc numbers frames from their stream's first RTP timestamp: frame RTP timestamp = pts + origin."""
    mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
    return getattr(mapper, "_origin", None)

# aiortc's own estimate starts low and climbs slowly: report at least a fast local link.
_orig_pack_remb = rtcrtpreceiver.pack_remb_fci
rtcrtpreceiver.pack_remb_fci = lambda bitrate, ssrcs: _orig_pack_remb(max(bitrate, REMB_BPS), ssrcs)


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_jwt(token: str, secret: bytes):
    try:
        h, p, s = token.split(".")
        header = json.loads(b64d(h))
        if header.get("alg") != "HS256":
            return None
        sig = base64.urlsafe_b64encode(hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()).rstrip(b"=")
        if not hmac.compare_digest(sig.decode(), s):
            return None
        claims = json.loads(b64d(p))
        t = time.time()
        if claims.get("exp") is not None and t > claims["exp"] + 5:
            return None
        if claims.get("nbf") is not None and t < claims["nbf"] - 5:
            return None
        video = claims.get("video") or {}
        if not video.get("roomJoin") or not video.get("room") or not claims.get("sub"):
            return None
        return claims
    except Exception:
        return None


def write_png(path: str, rgb) -> None:
    """Write an HxWx3 uint8 array as PNG (no Pillow needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def with_bitrate_hints(sdp: str) -> str:
    """Add libwebrtc's start/min bitrate hints to every video codec of an answer.

    aiortc has no transport-wide congestion control, so the sender's estimate would start at 300 kbps and
    climb slowly (it scales the resolution down and drops frames for seconds). A local SFU link is fast:
    say so with `x-google-start-bitrate` / `x-google-min-bitrate` (kbps), which libwebrtc reads from the
    remote description. REMB feedback keeps the estimate up afterwards.
    """
    hints = f"x-google-start-bitrate={START_KBPS};x-google-min-bitrate={MIN_KBPS}"
    out, in_video, video_pts, fmtp_pts = [], False, [], set()
    lines = sdp.split("\r\n")

    def flush():
        for pt in video_pts:
            if pt not in fmtp_pts:
                out.append(f"a=fmtp:{pt} {hints}")

    for line in lines:
        if line.startswith("m="):
            if in_video:
                flush()
            in_video = line.startswith("m=video")
            video_pts, fmtp_pts = [], set()
        elif in_video and line.startswith("a=rtpmap:"):
            pt, codec = line[len("a=rtpmap:"):].split(" ", 1)
            if codec.split("/")[0].upper() in ("H264", "VP8", "VP9", "AV1"):
                video_pts.append(pt)
        elif in_video and line.startswith("a=fmtp:"):
            pt = line[len("a=fmtp:"):].split(" ", 1)[0]
            if pt in video_pts:
                fmtp_pts.add(pt)
                line = line + ";" + hints
        out.append(line)
    if in_video:
        # the last section ends at the trailing empty line
        tail = out.pop() if out and out[-1] == "" else None
        flush()
        if tail is not None:
            out.append(tail)
    return "\r\n".join(out)


class Participant:
    def __init__(self, room, ws, claims, join_request):
        self.room = room
        self.ws = ws
        self.identity = claims["sub"]
        self.sid = "PA_" + secrets.token_hex(6)
        self.channels = {}
        self.pc = RTCPeerConnection()
        self.lock = asyncio.Lock()
        self.tracks = {}  # cid -> TrackInfo
        self.closed = False
        ci = join_request.client_info
        self.info = models.ParticipantInfo(
            sid=self.sid, identity=self.identity, name=claims.get("name") or self.identity,
            state=models.ParticipantInfo.ACTIVE, joined_at=int(time.time()), joined_at_ms=int(time.time() * 1000),
            kind=KINDS.get(str(claims.get("kind", "")).lower(), 0), attributes=claims.get("attributes") or {},
            metadata=claims.get("metadata") or "", version=1, is_publisher=False,
            permission=models.ParticipantPermission(can_publish=True, can_subscribe=True, can_publish_data=True),
            client_protocol=ci.client_protocol,
        )
        self.record = {
            "identity": self.identity, "sid": self.sid, "kind": self.info.kind, "attributes": dict(self.info.attributes),
            "sdk": ci.sdk, "protocol": ci.protocol, "client_protocol": ci.client_protocol,
            "joined_at": now(), "left_at": None, "leave": None, "tracks": [], "video": [], "audio": [],
            "data_sent": 0, "data_received": 0,
        }

    async def send(self, **kw):
        if self.closed:
            return
        try:
            await self.ws.send(rtc.SignalResponse(**kw).SerializeToString())
        except Exception as e:
            log(self.identity, "signal send failed:", e)

    async def answer(self, sdp, oid):
        async with self.lock:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            sdp = with_bitrate_hints(self.pc.localDescription.sdp)
            await self.send(answer=rtc.SessionDescription(type="answer", sdp=sdp, id=oid))

    def send_data(self, label, raw: bytes) -> bool:
        ch = self.channels.get(label) or self.channels.get("_reliable")
        if ch is None or ch.readyState != "open":
            return False
        ch.send(raw)
        self.record["data_received"] += 1
        return True


class Room:
    def __init__(self, name, args):
        self.name = name
        self.sid = "RM_" + secrets.token_hex(6)
        self.args = args
        self.participants = {}

    def others(self, identity):
        return [p for i, p in self.participants.items() if i != identity]

    async def broadcast_update(self, changed: Participant, exclude=None):
        for p in self.others(exclude or changed.identity):
            await p.send(update=rtc.ParticipantUpdate(participants=[changed.info]))


class Server:
    def __init__(self, args):
        self.args = args
        self.secret = args.secret.encode()
        self.rooms = {}
        self.report = {"started": time.time(), "t0_unix": T0_UNIX, "auth_failures": 0, "participants": [], "data": {
            "relayed": 0, "undeliverable": 0, "by_kind": {}, "rpc_v1": [], "streams": []}}
        self.stream_topics = {}  # stream_id -> header record
        self.recording = not args.no_record
        self.tasks = set()
        os.makedirs(args.out_dir, exist_ok=True)

    def spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    # ---------------------------------------------------------------- HTTP
    def process_request(self, conn, req):
        url = urllib.parse.urlparse(req.path)
        path = url.path.rstrip("/")
        q = urllib.parse.parse_qs(url.query)
        if path == "/health":
            return conn.respond(HTTPStatus.OK, "ok\n")
        if path.startswith("/control/"):
            return self.control(conn, path, q)
        if path not in ("/rtc/v1", "/rtc/v1/validate"):
            return conn.respond(HTTPStatus.NOT_FOUND, "this test room speaks /rtc/v1 only\n")
        auth = req.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else (q.get("access_token") or [""])[0]
        claims = verify_jwt(token, self.secret) if token else None
        if claims is None:
            self.report["auth_failures"] += 1
            log("401 for", path)
            return conn.respond(HTTPStatus.UNAUTHORIZED, "invalid token: signature verification failed\n")
        if path == "/rtc/v1/validate":
            return conn.respond(HTTPStatus.OK, "success\n")
        conn.claims = claims
        return None

    def control(self, conn, path, q):
        if path == "/control/record":
            # Per-frame recording on (a new window: earlier per-frame data is dropped) or off (counters only),
            # so hour-long runs keep a few windows, not an hour of frames.
            on = (q.get("on") or ["1"])[0] == "1"
            if on:
                for pr in self.report["participants"]:
                    for v in pr["video"]:
                        v["arrivals"], v["grid"], v["samples"] = [], [], []
                    for a in pr["audio"]:
                        a["rotate"] = True
            self.recording = on
            return conn.respond(HTTPStatus.OK, f"recording {on}\n")
        return conn.respond(HTTPStatus.NOT_FOUND, "unknown control\n")

    async def disconnect(self, room, p, reason):
        p.leave_reason = reason
        await p.send(leave=rtc.LeaveRequest(can_reconnect=False, reason=reason, action=rtc.LeaveRequest.DISCONNECT))
        await asyncio.sleep(0.2)
        await self.leave(room, p, reason)
        try:
            await p.ws.close()
        except Exception:
            pass

    async def leave(self, room, p, reason):
        if p.closed:
            return
        reason = getattr(p, "leave_reason", None) or reason
        p.closed = True
        p.record["left_at"] = now()
        p.record["leave"] = models.DisconnectReason.Name(reason)
        room.participants.pop(p.identity, None)
        p.info.state = models.ParticipantInfo.DISCONNECTED
        p.info.disconnect_reason = reason
        # Others may leave while we await their sends: iterate over a copy.
        for o in list(room.participants.values()):
            await o.send(update=rtc.ParticipantUpdate(participants=[p.info]))
        await p.pc.close()
        log(p.identity, "left:", models.DisconnectReason.Name(reason))

    # ---------------------------------------------------------------- signalling
    async def handler(self, ws):
        claims = ws.claims
        q = urllib.parse.parse_qs(urllib.parse.urlparse(ws.request.path).query)
        wrapped = rtc.WrappedJoinRequest()
        wrapped.ParseFromString(b64d(q["join_request"][0]))
        raw = gzip.decompress(wrapped.join_request) if wrapped.compression == rtc.WrappedJoinRequest.GZIP else wrapped.join_request
        jr = rtc.JoinRequest()
        jr.ParseFromString(raw)
        room_name = claims["video"]["room"]
        room = self.rooms.setdefault(room_name, Room(room_name, self.args))
        old = room.participants.get(claims["sub"])
        if old is not None:
            await self.disconnect(room, old, models.DisconnectReason.DUPLICATE_IDENTITY)
        p = Participant(room, ws, claims, jr)
        self.report["participants"].append(p.record)
        log("join", p.identity, "kind", p.info.kind, "sdk", jr.client_info.sdk, "client_protocol", jr.client_info.client_protocol,
            "attrs", dict(p.info.attributes))
        others = [o.info for o in room.others(p.identity)]
        room.participants[p.identity] = p
        await p.send(join=rtc.JoinResponse(
            room=models.Room(sid=room.sid, name=room.name, num_participants=len(room.participants)),
            participant=p.info, other_participants=others, server_version="1.9.0",
            server_info=models.ServerInfo(version="1.9.0", protocol=16, edition=models.ServerInfo.Standard),
            subscriber_primary=False, ping_interval=5, ping_timeout=15))
        await room.broadcast_update(p)
        self.setup_pc(room, p)
        try:
            if jr.HasField("publisher_offer"):
                await p.answer(jr.publisher_offer.sdp, jr.publisher_offer.id)
            async for msg in ws:
                if isinstance(msg, str):
                    continue
                req = rtc.SignalRequest()
                req.ParseFromString(msg)
                if await self.signal(room, p, req) == "leave":
                    break
        except Exception as e:
            log(p.identity, "signal loop ended:", repr(e))
        finally:
            await self.leave(room, p, models.DisconnectReason.CLIENT_INITIATED)

    async def signal(self, room, p, req):
        which = req.WhichOneof("message")
        if which == "trickle":
            c = json.loads(req.trickle.candidateInit or "{}")
            if c.get("candidate"):
                cand = candidate_from_sdp(c["candidate"].split(":", 1)[1])
                cand.sdpMid = c.get("sdpMid")
                cand.sdpMLineIndex = c.get("sdpMLineIndex")
                await p.pc.addIceCandidate(cand)
        elif which == "offer":
            await p.answer(req.offer.sdp, req.offer.id)
        elif which == "answer":
            async with p.lock:
                await p.pc.setRemoteDescription(RTCSessionDescription(req.answer.sdp, "answer"))
        elif which == "add_track":
            t = req.add_track
            mime = ""
            if t.type == models.VIDEO:
                mime = "video/" + (t.simulcast_codecs[0].codec.upper() if t.simulcast_codecs and t.simulcast_codecs[0].codec else "VP8")
            else:
                mime = "audio/opus"
            info = models.TrackInfo(sid="TR_" + secrets.token_hex(6), type=t.type, name=t.name, width=t.width,
                                    height=t.height, source=t.source, mime_type=mime, simulcast=False, stream=t.stream)
            p.tracks[t.cid] = info
            p.info.tracks.append(info)
            p.info.is_publisher = True
            p.info.version += 1
            p.record["tracks"].append({"sid": info.sid, "name": t.name, "type": models.TrackType.Name(t.type),
                                       "source": models.TrackSource.Name(t.source), "width": t.width, "height": t.height,
                                       "mime": mime, "at": now()})
            log(p.identity, "add_track", t.name, models.TrackType.Name(t.type), f"{t.width}x{t.height}", mime)
            await p.send(track_published=rtc.TrackPublishedResponse(cid=t.cid, track=info))
            await room.broadcast_update(p)
        elif which == "ping_req":
            await p.send(pong_resp=rtc.Pong(last_ping_timestamp=req.ping_req.timestamp, timestamp=int(time.time() * 1000)))
        elif which == "ping":
            await p.send(pong=int(time.time() * 1000))
        elif which == "leave":
            return "leave"
        elif which == "update_metadata":
            u = req.update_metadata
            if u.attributes:
                p.info.attributes.update(dict(u.attributes))
            p.info.version += 1
            await room.broadcast_update(p)
        return None

    # ---------------------------------------------------------------- media and data
    def setup_pc(self, room, p):
        @p.pc.on("datachannel")
        def on_dc(ch):
            p.channels[ch.label] = ch

            @ch.on("message")
            def on_msg(msg):
                if isinstance(msg, bytes):
                    self.relay(room, p, ch.label, msg)

        @p.pc.on("track")
        def on_track(track):
            self.spawn(self.consume(p, track))

        @p.pc.on("connectionstatechange")
        async def on_state():
            log(p.identity, "pc", p.pc.connectionState)

    def relay(self, room, sender, label, raw):
        dp = models.DataPacket()
        try:
            dp.ParseFromString(raw)
        except Exception:
            return
        which = dp.WhichOneof("value") or "none"
        sender.record["data_sent"] += 1
        d = self.report["data"]
        d["by_kind"][which] = d["by_kind"].get(which, 0) + 1
        dp.participant_identity = sender.identity
        dp.participant_sid = sender.sid
        dests = list(dp.destination_identities)
        if which == "rpc_request":
            r = dp.rpc_request
            d["rpc_v1"].append({"from": sender.identity, "to": dests, "method": r.method, "payload": r.payload, "at": now()})
        elif which == "stream_header":
            h = dp.stream_header
            rec = {"from": sender.identity, "to": dests, "stream_id": h.stream_id, "topic": h.topic,
                   "attributes": dict(h.attributes), "mime": h.mime_type,
                   "inline": h.HasField("inline_content") if "inline_content" in h.DESCRIPTOR.fields_by_name else False,
                   "chunks": 0, "bytes": 0, "ended": False, "at": now()}
            self.stream_topics[h.stream_id] = rec
            d["streams"].append(rec)
        elif which == "stream_chunk":
            rec = self.stream_topics.get(dp.stream_chunk.stream_id)
            if rec:
                rec["chunks"] += 1
                rec["bytes"] += len(dp.stream_chunk.content)
                rec.setdefault("chunk_at", []).append(now())
        elif which == "stream_trailer":
            rec = self.stream_topics.get(dp.stream_trailer.stream_id)
            if rec:
                rec["ended"] = True
                rec["reason"] = dp.stream_trailer.reason
        out = dp.SerializeToString()
        targets = [room.participants[i] for i in dests if i in room.participants] if dests else room.others(sender.identity)
        for t in targets:
            if t.identity != sender.identity and t.send_data(label, out):
                d["relayed"] += 1
            else:
                d["undeliverable"] += 1

    async def consume(self, p, track):
        if track.kind == "video":
            await self.consume_video(p, track)
        else:
            await self.consume_audio(p, track)

    async def remb_loop(self, p, track_rec):
        """Tell the sender the link is fast (like a local SFU would) for every video receiver."""
        while not p.closed and not track_rec.get("ended"):
            for tr in p.pc.getTransceivers():
                r = tr.receiver
                ssrc_rtcp = getattr(r, "_RTCRtpReceiver__rtcp_ssrc", None)
                ssrcs = list(getattr(r, "_RTCRtpReceiver__active_ssrc", {}).keys())
                if tr.kind == "video" and ssrc_rtcp is not None and ssrcs:
                    try:
                        await r._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=ssrc_rtcp, media_ssrc=0,
                                                          fci=pack_remb_fci(REMB_BPS, ssrcs)))
                    except Exception:
                        pass
            await asyncio.sleep(0.25)

    async def consume_video(self, p, track):
        idx = len(p.record["video"])
        rec = {"index": idx, "frames": 0, "width": 0, "height": 0, "first_at": None, "last_at": None,
               "arrivals": [], "samples": [], "pngs": [], "resolutions": {}, "ended": False, "grid": [],
               "first_at_unix": None}
        p.record["video"].append(rec)
        receiver = None
        for tr in p.pc.getTransceivers():
            if tr.receiver.track is track:
                rec["sr"] = tr.receiver.__dict__.setdefault("_lipcast_sr", [])
                receiver = tr.receiver
                rec["codecs"] = [c.mimeType + (" " + str(c.parameters.get("profile-level-id")) if c.parameters.get("profile-level-id") else "")
                                 for c in getattr(tr, "_codecs", [])[:1]]
        self.spawn(self.remb_loop(p, rec))
        save_at = {1, 25, 100, 250}
        while True:
            try:
                f = await track.recv()
            except Exception:
                break
            t = now()
            if rec.get("rtp_origin") is None:
                rec["rtp_origin"] = rtp_origin(receiver)
            rec["frames"] += 1
            n = rec["frames"]
            rec["first_at"] = rec["first_at"] if rec["first_at"] is not None else t
            rec["last_at"] = t
            rec["width"], rec["height"] = f.width, f.height
            key = f"{f.width}x{f.height}"
            rec["resolutions"][key] = rec["resolutions"].get(key, 0) + 1
            if rec.get("first_at_unix") is None:
                rec["first_at_unix"] = time.time()
            if not self.recording:
                continue
            rec["arrivals"].append([t, f.pts])
            # A 32x32 grid of block-mean luma per frame (base64 uint8): lets tests find motion anywhere
            # (the mouth, the eyes) without knowing the resolution the sender chose.
            y = f.to_ndarray(format="gray")
            gh, gw = (y.shape[0] // 32) * 32, (y.shape[1] // 32) * 32
            grid = y[:gh, :gw].reshape(32, gh // 32, 32, gw // 32).mean(axis=(1, 3))
            rec["grid"].append(base64.b64encode(grid.round().astype("uint8").tobytes()).decode())
            if n in save_at or n % 25 == 0:
                rgb = f.to_ndarray(format="rgb24")
                if n % 25 == 0:
                    rec["samples"].append({"frame": n, "at": t, "mean_rgb": [round(float(x), 1) for x in rgb.reshape(-1, 3).mean(0)],
                                           "top_left_rgb": [round(float(x), 1) for x in rgb[:16, :16].reshape(-1, 3).mean(0)]})
                if n in save_at:
                    path = os.path.join(self.args.out_dir, f"{p.identity}_v{idx}_f{n}.png")
                    write_png(path, rgb)
                    rec["pngs"].append(path)
        rec["ended"] = True

    async def consume_audio(self, p, track):
        idx = len(p.record["audio"])
        path = os.path.join(self.args.out_dir, f"{p.identity}_a{idx}.wav")
        rec = {"index": idx, "frames": 0, "samples": 0, "sample_rate": 0, "channels": 0, "wav": path,
               "peak": 0, "first_at": None, "ended": False, "arrivals": []}
        p.record["audio"].append(rec)
        receiver = None
        for tr in p.pc.getTransceivers():
            if tr.receiver.track is track:
                rec["sr"] = tr.receiver.__dict__.setdefault("_lipcast_sr", [])
                receiver = tr.receiver
        w = None
        while True:
            try:
                f = await track.recv()
            except Exception:
                break
            if rec.get("rtp_origin") is None:
                rec["rtp_origin"] = rtp_origin(receiver)
            rec["frames"] += 1
            if rec.pop("rotate", False) and w is not None:
                # A new recording window: a new WAV, sample indices from 0.
                w.close()
                w = None
                rec["window"] = rec.get("window", 0) + 1
                path = os.path.join(self.args.out_dir, f"{p.identity}_a{idx}_w{rec['window']}.wav")
                rec["wav"], rec["arrivals"], rec["samples"] = path, [], 0
            if not self.recording:
                continue
            arr = f.to_ndarray()
            ch = len(f.layout.channels)
            if w is None:
                w = wave.open(path, "wb")
                w.setnchannels(ch)
                w.setsampwidth(2)
                w.setframerate(f.sample_rate)
                rec["sample_rate"], rec["channels"], rec["first_at"] = f.sample_rate, ch, now()
            data = arr.astype("<i2").tobytes()
            w.writeframes(data)
            rec["arrivals"].append([now(), rec["samples"], f.samples, f.pts])
            rec["samples"] += f.samples
            rec["peak"] = max(rec["peak"], int(abs(arr.astype("int32")).max()) if arr.size else 0)
        if w is not None:
            w.close()
        rec["ended"] = True

    # ---------------------------------------------------------------- report
    def write_report(self):
        tmp = self.args.report + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.report, f)
        os.replace(tmp, self.args.report)

    async def report_loop(self):
        while True:
            self.write_report()
            await asyncio.sleep(0.5)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="10.77.0.1")
    ap.add_argument("--port", type=int, default=7880)
    ap.add_argument("--secret", default=os.environ.get("LK_TEST_SECRET", ""))
    ap.add_argument("--report", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--no-record", action="store_true", help="start with per-frame recording off (/control/record)")
    args = ap.parse_args()
    if not args.secret:
        sys.exit("a secret is required (--secret or LK_TEST_SECRET)")
    server = Server(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    reporter = asyncio.ensure_future(server.report_loop())
    async with serve(server.handler, args.host, args.port, process_request=server.process_request, max_size=None):
        log("listening", args.host, args.port)
        print(json.dumps({"event": "listening", "host": args.host, "port": args.port}), flush=True)
        try:
            await asyncio.wait_for(stop.wait(), args.duration)
        except asyncio.TimeoutError:
            pass
    reporter.cancel()
    server.write_report()
    log("stopped")


if __name__ == "__main__":
    asyncio.run(main())
