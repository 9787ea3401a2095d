"""A whole voice agent as users run one, for tests against the real livekit-server: a livekit-agents worker
(`python agent_job.py start`) that the server dispatches a job to when a room is created. The job runs an
AgentSession with a local espeak-ng TTS (no cloud) whose avatar is livekit-plugins-bithuman's own
`AvatarSession(api_url=<lipcast>/launch, avatar_image=<portrait>)`, exactly as bitHuman's self-hosted example
sets it up, then follows a script: wait for the avatar, say each utterance (waiting for its playout, which the
avatar reports with lk.playback_finished), pause, and end the job (`ctx.shutdown()`: the plugin then removes the
avatar from the room).

Configuration (environment; the job processes inherit it):
  LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET   the server (the plugin mints the avatar's token with them)
  LIPCAST_JOB_SCRIPT   JSON {api_url, api_secret, avatar_image, model (null: JSON; "expression": multipart),
                             lead_in, utterances: [[text, pause_s, interrupt_after_s or null], ...],
                             stay (seconds to stay, silent, before ending the job),
                             idle_processes (job processes kept ready: one per room served at once)}
                       An utterance with interrupt_after_s is interrupted that long after its playout started
                       (the agent's own interruption: the plugin sends lk.clear_buffer to the avatar).
  LIPCAST_JOB_EVENTS   a file: one JSON event per line, each with the job's `room` (job_started, launching, launched, avatar_joined,
                       linked, tts {text, wav, seconds}, saying, playback_started, interrupting,
                       playback_finished, said, staying, shutting_down, error)
"""
import asyncio
import json
import os
import subprocess
import tempfile
import time
import wave

from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    Agent,
    AgentSession,
    APIConnectOptions,
    JobContext,
    WorkerOptions,
    cli,
    tts,
    utils,
)
from livekit.agents.voice import room_io
from livekit.plugins import bithuman

T0 = time.monotonic()
# The room of the job this process runs (each job runs in a process of its own): every event names it, so a
# test that has the worker serve several rooms at once tells their events apart.
ROOM = None


def emit(event, **kw):
    line = json.dumps({"event": event, "t": round(time.monotonic() - T0, 4), "unix": time.time(), "room": ROOM,
                       **kw})
    with open(os.environ["LIPCAST_JOB_EVENTS"], "a") as f:
        f.write(line + "\n")


class EspeakTTS(tts.TTS):
    """espeak-ng on this machine: the whole utterance at once (not streamed), 22.05 kHz mono."""

    def __init__(self, out_dir: str):
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=22050, num_channels=1)
        self.out_dir = out_dir

    @property
    def provider(self) -> str:
        return "espeak-ng"

    def synthesize(self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS):
        return EspeakStream(tts=self, input_text=text, conn_options=conn_options)


class EspeakStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        fd, path = tempfile.mkstemp(suffix=".wav", dir=self._tts.out_dir)
        os.close(fd)
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng", "-v", "en-us", "-s", "150", "-w", path, self.input_text,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng failed: {err.decode(errors='replace')}")
        with wave.open(path, "rb") as w:
            rate, ch, pcm = w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())
        emit("tts", text=self.input_text, wav=path, seconds=len(pcm) / (2 * ch * rate))
        output_emitter.initialize(request_id=utils.shortuuid(), sample_rate=rate, num_channels=ch,
                                  mime_type="audio/pcm")
        output_emitter.push(pcm)
        output_emitter.flush()


async def entrypoint(ctx: JobContext):
    global ROOM
    ROOM = ctx.job.room.name
    script = json.loads(os.environ["LIPCAST_JOB_SCRIPT"])
    try:
        await run(ctx, script)
    except Exception as e:
        emit("error", error=repr(e))
        raise


async def run(ctx: JobContext, script):
    await ctx.connect()
    emit("job_started", room=ctx.room.name, identity=ctx.room.local_participant.identity,
         kind=int(ctx.room.local_participant.kind), job_id=ctx.job.id)
    out_dir = os.path.dirname(os.environ["LIPCAST_JOB_EVENTS"])
    session = AgentSession(tts=EspeakTTS(out_dir))
    kw = {"api_url": script["api_url"], "api_secret": script["api_secret"],
          "avatar_image": script["avatar_image"]}
    if script.get("model"):
        kw["model"] = script["model"]
    avatar = bithuman.AvatarSession(**kw)
    emit("launching", api_url=script["api_url"], model=script.get("model"))
    await avatar.start(session, room=ctx.room)
    emit("launched", avatar=avatar.avatar_identity)
    audio_out = session.output.audio
    audio_out.on("playback_finished", lambda ev: emit(
        "playback_finished", playback_position=ev.playback_position, interrupted=ev.interrupted))
    playing = asyncio.Event()

    def on_started(ev):
        emit("playback_started", created_at=ev.created_at)
        playing.set()

    audio_out.on("playback_started", on_started)
    await session.start(
        agent=Agent(instructions="You are the lipcast test agent."),
        room=ctx.room,
        room_options=room_io.RoomOptions(audio_input=False, audio_output=False, text_input=False),
    )
    await avatar.wait_for_join(timeout=30)
    p = ctx.room.remote_participants.get(avatar.avatar_identity)
    emit("avatar_joined", identity=avatar.avatar_identity, kind=int(p.kind) if p else None,
         attributes=dict(p.attributes) if p else None,
         tracks=[pub.name for pub in p.track_publications.values()] if p else [])
    await asyncio.sleep(script.get("lead_in", 2.0))
    linked = session.room_io.linked_participant
    emit("linked", identity=linked.identity if linked else None)
    for text, pause, *rest in script["utterances"]:
        cut = rest[0] if rest else None
        playing.clear()
        emit("saying", text=text)
        handle = session.say(text, allow_interruptions=cut is not None)
        if cut is not None:
            await asyncio.wait_for(playing.wait(), timeout=30)
            await asyncio.sleep(cut)
            emit("interrupting", text=text)
            handle.interrupt()
        await handle.wait_for_playout()
        emit("said", text=text, interrupted=handle.interrupted)
        await asyncio.sleep(pause)
    if script.get("stay"):
        emit("staying", seconds=script["stay"])
        await asyncio.sleep(script["stay"])
    emit("shutting_down")
    ctx.shutdown(reason="the test script is done")


if __name__ == "__main__":
    cli.run_app(WorkerOptions(
        entrypoint_fnc=entrypoint,
        # The machine is shared and busy: never mark the worker unavailable for load (the default 0.7 would).
        load_fnc=lambda: 0.0,
        # One job process ready per room the test runs at once (a process takes seconds to start on 2 busy cores).
        num_idle_processes=int(json.loads(os.environ["LIPCAST_JOB_SCRIPT"]).get("idle_processes", 1)),
        port=0,
    ))
