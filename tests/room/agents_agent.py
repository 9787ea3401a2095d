"""The agent side as real voice agents run it: livekit-agents' own `DataStreamAudioOutput` (the code
`livekit-plugins-bithuman` installs as the agent's audio output), configured as that plugin does
(`wait_playback_start=False`, no `wait_remote_track`). It runs in its own venv (`.venv-agents`), because
livekit-agents pins another `livekit` SDK than the test room's.

Commands on stdin, one JSON event per line on stdout:
  say <wav> [realtime]   -> pushes the WAV in 20 ms frames through capture_frame(), then flush();
                            {"event": "said", "seconds": ...}
  interrupt <delay_s>    -> clear_buffer() after delay_s; {"event": "interrupted"}
  wait_playout <timeout> -> {"event": "playout", "playback_position": ..., "interrupted": ..., "waited_s": ...}
  leave                  -> {"event": "left"}

usage: agents_agent.py --url URL --token JWT --avatar IDENTITY
"""
import argparse
import asyncio
import json
import logging
import os
import sys
import time
import wave

from livekit import rtc
from livekit.agents.voice.avatar import DataStreamAudioOutput

T0 = time.monotonic()


def emit(event, **kw):
    print(json.dumps({"event": event, "t": round(time.monotonic() - T0, 4), "unix": time.time(), **kw}), flush=True)


class Warnings(logging.Handler):
    """livekit-agents logs a warning when the avatar never answers a clear with playback_finished."""

    def emit(self, record):
        if record.levelno >= logging.WARNING:
            emit("agents_warning", message=record.getMessage())


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--avatar", required=True)
    a = ap.parse_args()
    logging.getLogger("livekit.agents").addHandler(Warnings())
    room = rtc.Room()
    await room.connect(a.url, a.token, rtc.RoomOptions(auto_subscribe=False))
    out = DataStreamAudioOutput(room, destination_identity=a.avatar, wait_playback_start=False)
    out.on("playback_finished", lambda ev: emit("playback_finished", playback_position=ev.playback_position,
                                                interrupted=ev.interrupted))
    emit("connected", identity=room.local_participant.identity)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = set()
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.decode().split()
        if not cmd:
            continue
        try:
            if cmd[0] == "say":
                with wave.open(cmd[1], "rb") as w:
                    rate, ch = w.getframerate(), w.getnchannels()
                    pcm = w.readframes(w.getnframes())
                realtime = len(cmd) > 2 and cmd[2] == "1"
                step = rate // 50 * 2 * ch  # 20 ms
                t0 = time.monotonic()
                for i in range(0, len(pcm), step):
                    chunk = pcm[i:i + step]
                    await out.capture_frame(rtc.AudioFrame(chunk, rate, ch, len(chunk) // (2 * ch)))
                    if realtime:
                        await asyncio.sleep(max(0.0, t0 + (i + step) / (2 * ch * rate) - time.monotonic()))
                out.flush()
                emit("said", seconds=len(pcm) / (2 * ch * rate))
            elif cmd[0] == "interrupt":
                async def later(d):
                    await asyncio.sleep(d)
                    out.clear_buffer()
                    emit("interrupted")
                t = asyncio.ensure_future(later(float(cmd[1]) if len(cmd) > 1 else 0.0))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            elif cmd[0] == "wait_playout":
                t = time.monotonic()
                ev = await asyncio.wait_for(out.wait_for_playout(), float(cmd[1]) if len(cmd) > 1 else 30)
                emit("playout", playback_position=ev.playback_position, interrupted=ev.interrupted,
                     waited_s=round(time.monotonic() - t, 3))
            elif cmd[0] == "leave":
                await room.disconnect()
                emit("left")
                sys.stdout.flush()
                os._exit(0)
            else:
                emit("error", what="command", error=f"unknown command {cmd[0]}")
        except Exception as e:
            emit("error", what=cmd[0], error=repr(e))
    await room.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
