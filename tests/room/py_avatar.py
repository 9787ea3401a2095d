"""LiveKit's own Python avatar pattern, for the side-by-side benchmark: the `livekit` SDK (the same engine as
lipcast) with an `AVSynchronizer`, publishing pre-rendered frames (made by `lipcast-render-bench
--dump-frames`) and speech at 25 FPS, the way livekit-agents' AvatarRunner does. It renders nothing itself, so
its CPU is the publishing path alone; the comparison with lipcast is therefore generous to it.

usage: py_avatar.py --url URL --token JWT --frames FILE.i420 --wav SPEECH.wav --seconds N
prints one JSON line at the end: {"cpu_seconds": ..., "frames": ..., "seconds": ...}
"""
import argparse
import asyncio
import json
import resource
import time
import wave

from livekit import rtc


def cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--frames", required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--seconds", type=float, default=30.0)
    a = ap.parse_args()
    meta = json.load(open(a.frames.rsplit(".", 1)[0] + ".json"))
    w, h, fps = meta["width"], meta["height"], meta["fps"]
    size = w * h * 3 // 2
    blob = open(a.frames, "rb").read()
    frames = [rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, blob[i:i + size]) for i in range(0, len(blob) - size + 1, size)]
    with wave.open(a.wav, "rb") as f:
        rate, ch = f.getframerate(), f.getnchannels()
        pcm = f.readframes(f.getnframes())
    step = rate // fps * 2 * ch

    room = rtc.Room()
    await room.connect(a.url, a.token, rtc.RoomOptions(auto_subscribe=False))
    video = rtc.VideoSource(w, h)
    audio = rtc.AudioSource(rate, ch, queue_size_ms=100)
    vopts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False,
                                    video_encoding=rtc.VideoEncoding(max_framerate=fps, max_bitrate=2_000_000),
                                    video_codec=rtc.VideoCodec.H264)
    await room.local_participant.publish_track(rtc.LocalAudioTrack.create_audio_track("avatar_audio", audio),
                                               rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    await room.local_participant.publish_track(rtc.LocalVideoTrack.create_video_track("avatar_video", video), vopts)
    sync = rtc.AVSynchronizer(audio_source=audio, video_source=video, video_fps=fps, video_queue_size_ms=100)
    c0, t0 = cpu(), time.monotonic()
    n = 0
    while time.monotonic() - t0 < a.seconds:
        off = (n * step) % max(len(pcm) - step, step)
        chunk = pcm[off:off + step]
        await sync.push(frames[n % len(frames)])
        await sync.push(rtc.AudioFrame(chunk, rate, ch, len(chunk) // (2 * ch)))
        n += 1
    elapsed = time.monotonic() - t0
    used = cpu() - c0
    await sync.aclose()
    await room.disconnect()
    print(json.dumps({"cpu_seconds": used, "frames": n, "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
