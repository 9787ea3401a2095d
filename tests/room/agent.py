"""The agent side of the avatar protocol, run with LiveKit's real Python SDK (`livekit.rtc`, same engine).

Joins as a participant of kind AGENT (the token says so), records the avatar RPCs it receives, and obeys
commands read line by line from stdin; every event is one JSON line on stdout:

  wait_avatar <timeout_s>            -> {"event": "avatar_joined", ...} or {"event": "error", ...}
  wait_track <name> <timeout_s>      -> {"event": "track_seen", "name": ...}
  send_speech <seconds> [rate] [ch]  -> {"event": "speech_sent", "bytes": N, "stream_id": ...}
                                         (int16 LE chirp, lk.audio_stream, 15000-byte chunks)
  send_wav <path> [realtime]         -> {"event": "wav_sent", "bytes": N, ...} (a 16-bit PCM WAV as one segment;
                                         realtime=1 paces the chunks at playback speed, like a streaming TTS)
  send_stream <topic> <n> [attrs]    -> {"event": "stream_sent", ...} (n bytes, attrs as compact JSON)
  clear_buffer                       -> {"event": "clear_buffer_result", "payload": ..., "error": ...}
  leave                              -> disconnects, {"event": "left"}, exits 0

usage: agent.py --url ws://10.77.0.1:7880 --token JWT --avatar AVATAR_IDENTITY [--no-playback-started]
"""
import argparse
import asyncio
import json
import os
import sys
import time
import uuid
import wave

import numpy as np
from livekit import rtc

AUDIO_STREAM_TOPIC = "lk.audio_stream"
CHUNK = 15000
T0 = time.monotonic()


def emit(event, **kw):
    print(json.dumps({"event": event, "t": round(time.monotonic() - T0, 4), "unix": time.time(), **kw}), flush=True)


def chirp(seconds: float, rate: int, channels: int) -> bytes:
    """A 200 -> 1200 Hz chirp at about -10 dBFS, int16 little-endian, interleaved."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    f0, f1 = 200.0, 1200.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    mono = (0.3 * 32767 * np.sin(phase)).astype("<i2")
    return np.repeat(mono, channels).astype("<i2").tobytes()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--avatar", required=True)
    ap.add_argument("--no-playback-started", action="store_true", help="do not register lk.playback_started")
    args = ap.parse_args()

    room = rtc.Room()
    avatar_here = asyncio.Event()
    tracks_seen = {}

    @room.on("participant_connected")
    def on_join(p: rtc.RemoteParticipant):
        emit("participant_connected", identity=p.identity, kind=int(p.kind), attributes=dict(p.attributes))
        if p.identity == args.avatar:
            avatar_here.set()

    @room.on("participant_disconnected")
    def on_leave(p: rtc.RemoteParticipant):
        emit("participant_disconnected", identity=p.identity)

    @room.on("track_published")
    def on_track(pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant):
        tracks_seen[pub.name] = p.identity
        emit("track_published", identity=p.identity, name=pub.name, kind=int(pub.kind), sid=pub.sid)

    @room.on("disconnected")
    def on_disc(reason):
        emit("disconnected", reason=str(reason))

    def rpc_handler(method):
        async def handler(data: rtc.RpcInvocationData) -> str:
            emit("rpc", method=method, caller=data.caller_identity, payload=data.payload)
            if method == "lk.playback_finished":
                # What livekit-agents does: PlaybackFinishedEvent(**json.loads(payload)).
                try:
                    obj = json.loads(data.payload)
                    ok = set(obj) == {"playback_position", "interrupted", "synchronized_transcript"}
                except Exception:
                    ok = False
                emit("playback_finished_valid", valid=ok)
            return ""
        return handler

    t = time.monotonic()
    try:
        await room.connect(args.url, args.token, rtc.RoomOptions(auto_subscribe=False))
    except Exception as e:
        emit("error", what="connect", error=str(e))
        return 2
    room.local_participant.register_rpc_method("lk.playback_finished", rpc_handler("lk.playback_finished"))
    if not args.no_playback_started:
        room.local_participant.register_rpc_method("lk.playback_started", rpc_handler("lk.playback_started"))
    emit("connected", identity=room.local_participant.identity, join_s=round(time.monotonic() - t, 4),
         others=[p.identity for p in room.remote_participants.values()])
    for p in room.remote_participants.values():
        if p.identity == args.avatar:
            avatar_here.set()
        for pub in p.track_publications.values():
            tracks_seen[pub.name] = p.identity

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.decode().split()
        if not cmd:
            continue
        try:
            if cmd[0] == "wait_avatar":
                await asyncio.wait_for(avatar_here.wait(), float(cmd[1]) if len(cmd) > 1 else 30)
                emit("avatar_joined", identity=args.avatar)
            elif cmd[0] == "wait_track":
                deadline = time.monotonic() + (float(cmd[2]) if len(cmd) > 2 else 30)
                while cmd[1] not in tracks_seen and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                if cmd[1] in tracks_seen:
                    emit("track_seen", name=cmd[1], identity=tracks_seen[cmd[1]])
                else:
                    emit("error", what="wait_track", error=f"no track {cmd[1]}")
            elif cmd[0] == "send_speech":
                seconds = float(cmd[1])
                rate = int(cmd[2]) if len(cmd) > 2 else 24000
                channels = int(cmd[3]) if len(cmd) > 3 else 1
                pcm = chirp(seconds, rate, channels)
                writer = await room.local_participant.stream_bytes(
                    name=f"AUDIO_{uuid.uuid4().hex[:12]}", topic=AUDIO_STREAM_TOPIC,
                    destination_identities=[args.avatar],
                    attributes={"sample_rate": str(rate), "num_channels": str(channels)})
                for i in range(0, len(pcm), CHUNK):
                    await writer.write(pcm[i:i + CHUNK])
                await writer.aclose()
                emit("speech_sent", bytes=len(pcm), stream_id=writer.info.stream_id, sample_rate=rate, num_channels=channels)
            elif cmd[0] == "send_wav":
                with wave.open(cmd[1], "rb") as w:
                    rate, channels = w.getframerate(), w.getnchannels()
                    pcm = w.readframes(w.getnframes())
                realtime = len(cmd) > 2 and cmd[2] == "1"
                writer = await room.local_participant.stream_bytes(
                    name=f"AUDIO_{uuid.uuid4().hex[:12]}", topic=AUDIO_STREAM_TOPIC,
                    destination_identities=[args.avatar],
                    attributes={"sample_rate": str(rate), "num_channels": str(channels)})
                emit("wav_started", stream_id=writer.info.stream_id, sample_rate=rate, num_channels=channels)
                t0 = time.monotonic()
                for i in range(0, len(pcm), CHUNK):
                    await writer.write(pcm[i:i + CHUNK])
                    if realtime:
                        due = t0 + (i + CHUNK) / (2 * channels * rate)
                        await asyncio.sleep(max(0.0, due - time.monotonic()))
                await writer.aclose()
                emit("wav_sent", bytes=len(pcm), stream_id=writer.info.stream_id, sample_rate=rate,
                     num_channels=channels, seconds=len(pcm) / (2 * channels * rate))
            elif cmd[0] == "send_stream":
                # send_stream <topic> <nbytes> <attributes as JSON without spaces>
                data = bytes(i % 251 for i in range(int(cmd[2])))
                attrs = json.loads(cmd[3]) if len(cmd) > 3 else {}
                writer = await room.local_participant.stream_bytes(
                    name=f"AUDIO_{uuid.uuid4().hex[:12]}", topic=cmd[1], destination_identities=[args.avatar],
                    attributes=attrs)
                for i in range(0, len(data), CHUNK):
                    await writer.write(data[i:i + CHUNK])
                await writer.aclose()
                emit("stream_sent", topic=cmd[1], bytes=len(data), stream_id=writer.info.stream_id)
            elif cmd[0] == "clear_buffer":
                try:
                    res = await room.local_participant.perform_rpc(
                        destination_identity=args.avatar, method="lk.clear_buffer", payload="", response_timeout=5.0)
                    emit("clear_buffer_result", payload=res, error=None)
                except rtc.RpcError as e:
                    emit("clear_buffer_result", payload=None, error={"code": e.code, "message": e.message})
            elif cmd[0] == "leave":
                await room.disconnect()
                emit("left")
                # The SDK's engine can abort while the interpreter tears down; nothing is left to do.
                sys.stdout.flush()
                os._exit(0)
            else:
                emit("error", what="command", error=f"unknown command {cmd[0]}")
        except Exception as e:
            emit("error", what=cmd[0], error=repr(e))
    await room.disconnect()
    emit("left")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
