"""A viewer in a real LiveKit room: LiveKit's Python SDK (`livekit.rtc`, the same engine browsers' peers talk
to), subscribing to the avatar's `avatar_video` and `avatar_audio` and decoding them, as a person watching
would. It joins as a plain participant (its join creates the room, which makes livekit-server dispatch the
agent job).

Events, one JSON line each on stdout: connected, participant_connected {identity, kind, attributes},
participant_disconnected {identity, reason}, track_subscribed {identity, name, kind}, first_frame {identity, unix, width, height},
disconnected. The report (written every second and at the end: stdin closed or SIGTERM) has the shape of
tests/room/room.py's participant records, so the Rust analysis reads both:
  {"t0_unix", "participants": [{"identity", "kind", "attributes",
     "leave": the server's DisconnectReason once it left,
     "video": [{"name", "frames", "first_at_unix", "arrivals": [[t, timestamp_us]], "grid": [base64 32x32 luma],
                "width", "height", "codecs": [mime types], "samples": [{frame, top_left_rgb}] (every 25th frame),
                "pngs": [frames 1, 25, 100 and 250 as PNG files in the out dir], "rtp_stats": [{t, packets_lost, nack_count, pli_count, fir_count,
                key_frames_decoded, freeze_count, total_freeze_duration, ...}] (inbound-rtp, once a second)}],
     "audio": [{"name", "wav", "sample_rate", "channels", "samples", "peak",
                "arrivals": [[t, first_sample, samples, 0]]}]}]}
Times `t` are seconds on this process's monotonic clock since t0 (t0_unix on the wall clock).

usage: viewer.py --url URL --token JWT --report PATH --out-dir DIR
"""
import argparse
import asyncio
import base64
import json
import os
import signal
import struct
import sys
import time
import wave
import zlib

import numpy as np
from livekit import rtc
from livekit.rtc._proto import participant_pb2

T0 = time.monotonic()
T0_UNIX = time.time()


def now():
    return time.monotonic() - T0


def emit(event, **kw):
    print(json.dumps({"event": event, "t": round(now(), 4), "unix": time.time(), **kw}), flush=True)


def i420_to_rgb(data, w, h):
    """An I420 frame as an RGB array (BT.601, limited range: what the engine's encoder input uses)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    y = buf[: w * h].reshape(h, w).astype(np.float32)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    u = buf[w * h : w * h + cw * ch].reshape(ch, cw).astype(np.float32)
    v = buf[w * h + cw * ch : w * h + 2 * cw * ch].reshape(ch, cw).astype(np.float32)
    u = np.repeat(np.repeat(u, 2, axis=0), 2, axis=1)[:h, :w] - 128.0
    v = np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)[:h, :w] - 128.0
    c = 1.164 * (y - 16.0)
    rgb = np.stack([c + 1.596 * v, c - 0.392 * u - 0.813 * v, c + 2.017 * u], axis=-1)
    return np.clip(rgb.round(), 0, 255).astype(np.uint8)


def top_left_rgb(data, w, h):
    """Mean RGB of the frame's top-left 16x16 pixels."""
    rgb = i420_to_rgb(data, w, h)[:16, :16].reshape(-1, 3).mean(axis=0)
    return [round(float(x), 1) for x in rgb]


def write_png(path, rgb):
    """An 8-bit RGB PNG (zlib and struct only: the viewer's venv has no imaging library)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        f.write(chunk(b"IEND", b""))


class Viewer:
    def __init__(self, args):
        self.args = args
        self.participants = {}
        self.tasks = set()
        self.writers = []
        self.video_tracks = []

    async def sample_stats(self):
        """The receiver's own counters for each video track (WebRTC inbound-rtp stats): keyframe requests it sent
        (PLI, FIR), NACKs, losses, freezes as libwebrtc counts them."""
        for track, rec in list(self.video_tracks):
            try:
                stats = await asyncio.wait_for(track.get_stats(), 2.0)
            except Exception:
                continue
            for st in stats:
                if st.WhichOneof("stats") == "codec":
                    mime = st.codec.codec.mime_type
                    if mime and mime not in rec["codecs"]:
                        rec["codecs"].append(mime)
                if st.WhichOneof("stats") != "inbound_rtp":
                    continue
                ib, rx = st.inbound_rtp.inbound, st.inbound_rtp.received
                rec["rtp_stats"].append({
                    "t": round(now(), 3), "packets_received": rx.packets_received, "packets_lost": rx.packets_lost,
                    "nack_count": ib.nack_count, "pli_count": ib.pli_count, "fir_count": ib.fir_count,
                    "frames_received": ib.frames_received, "frames_decoded": ib.frames_decoded,
                    "key_frames_decoded": ib.key_frames_decoded, "frames_dropped": ib.frames_dropped,
                    "freeze_count": ib.freeze_count, "total_freeze_duration": ib.total_freeze_duration,
                    "retransmitted_packets_received": ib.retransmitted_packets_received,
                })

    def record(self, p):
        rec = self.participants.get(p.identity)
        if rec is None:
            rec = {"identity": p.identity, "kind": int(p.kind), "attributes": dict(p.attributes),
                   "video": [], "audio": [], "left_at": None}
            self.participants[p.identity] = rec
        return rec

    def spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def video(self, track, p):
        rec = {"frames": 0, "first_at_unix": None, "arrivals": [], "grid": [], "width": 0, "height": 0,
               "name": track.name, "rtp_stats": [], "filler_frames": 0, "codecs": [], "samples": [], "pngs": []}
        self.record(p)["video"].append(rec)
        self.video_tracks.append((track, rec))
        stream = rtc.VideoStream(track, format=rtc.VideoBufferType.I420)
        async for ev in stream:
            t = now()
            f = ev.frame
            w, h = f.width, f.height
            if w < 32 or h < 32:
                # Not a picture of the track: the engine's black 2x2 filler frames (seen at 30 fps once the
                # avatar had left, with three rooms on a busy machine).
                rec["filler_frames"] += 1
                continue
            if rec["first_at_unix"] is None:
                rec["first_at_unix"] = time.time()
                emit("first_frame", identity=p.identity, width=w, height=h, unix=rec["first_at_unix"])
            rec["frames"] += 1
            rec["width"], rec["height"] = w, h
            y = np.frombuffer(f.data, dtype=np.uint8, count=w * h).reshape(h, w)
            gh, gw = (h // 32) * 32, (w // 32) * 32
            grid = y[:gh, :gw].reshape(32, gh // 32, 32, gw // 32).mean(axis=(1, 3))
            rec["arrivals"].append([t, ev.timestamp_us])
            rec["grid"].append(base64.b64encode(grid.round().astype("uint8").tobytes()).decode())
            n = rec["frames"]
            if n % 25 == 1:
                rec["samples"].append({"frame": n, "top_left_rgb": top_left_rgb(f.data, w, h)})
            if n in (1, 25, 100, 250):
                stem = os.path.splitext(os.path.basename(self.args.report))[0]
                path = os.path.join(self.args.out_dir, f"{stem}_{p.identity}_v{n}.png")
                write_png(path, i420_to_rgb(f.data, w, h))
                rec["pngs"].append(path)

    async def audio(self, track, p):
        idx = len(self.record(p)["audio"])
        # Named after this viewer's report too: viewers in several rooms see avatars of the same identity.
        stem = os.path.splitext(os.path.basename(self.args.report))[0]
        path = os.path.join(self.args.out_dir, f"{stem}_{p.identity}_a{idx}.wav")
        rate = 48000
        rec = {"wav": path, "sample_rate": rate, "channels": 1, "arrivals": [], "samples": 0, "peak": 0,
               "name": track.name}
        self.record(p)["audio"].append(rec)
        w = wave.open(path, "wb")
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        self.writers.append(w)
        stream = rtc.AudioStream(track, sample_rate=rate, num_channels=1)
        try:
            async for ev in stream:
                f = ev.frame
                data = bytes(f.data)
                w.writeframes(data)
                if data:
                    pcm = np.frombuffer(data, dtype=np.int16)
                    rec["peak"] = max(rec["peak"], int(np.abs(pcm.astype(np.int32)).max()))
                rec["arrivals"].append([now(), rec["samples"], f.samples_per_channel, 0])
                rec["samples"] += f.samples_per_channel
        finally:
            self.close(w)

    def close(self, w):
        if w in self.writers:
            self.writers.remove(w)
            w.close()

    def write_report(self):
        tmp = self.args.report + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"t0_unix": T0_UNIX, "participants": list(self.participants.values())}, f)
        os.replace(tmp, self.args.report)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()
    v = Viewer(args)
    room = rtc.Room()

    @room.on("participant_connected")
    def on_join(p):
        v.record(p)
        emit("participant_connected", identity=p.identity, kind=int(p.kind), attributes=dict(p.attributes))

    @room.on("participant_disconnected")
    def on_leave(p):
        rec = v.record(p)
        rec["left_at"] = now()
        rec["leave"] = participant_pb2.DisconnectReason.Name(p.disconnect_reason or 0)
        emit("participant_disconnected", identity=p.identity, reason=rec["leave"])

    @room.on("track_subscribed")
    def on_track(track, pub, p):
        emit("track_subscribed", identity=p.identity, name=pub.name, kind=int(track.kind))
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            v.spawn(v.video(track, p))
        else:
            v.spawn(v.audio(track, p))

    @room.on("disconnected")
    def on_disc(reason):
        emit("disconnected", reason=str(reason))

    await room.connect(args.url, args.token, rtc.RoomOptions(auto_subscribe=True))
    emit("connected", identity=room.local_participant.identity,
         others=[p.identity for p in room.remote_participants.values()])
    for p in room.remote_participants.values():
        v.record(p)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def stdin_closed():
        while await reader.readline():
            pass
        stop.set()

    v.spawn(stdin_closed())
    while not stop.is_set():
        await v.sample_stats()
        v.write_report()
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    for w in list(v.writers):
        v.close(w)
    v.write_report()
    emit("stopped")
    sys.stdout.flush()
    # The SDK's engine can abort while the interpreter tears down; the report is written.
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
