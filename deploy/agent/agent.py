"""lipcast demo agent: a LiveKit voice agent whose avatar is rendered by lipcast.

It is an ordinary livekit-agents agent using livekit-plugins-bithuman; the only lipcast-specific thing is
`api_url`, which points at lipcast's POST /launch instead of bitHuman's cloud.

Which models it uses is chosen by environment variables (see deploy/README.md):

  LLM   openai | none     default: openai when OPENAI_API_KEY is set, else none
  STT   openai            used when LLM is not none
  TTS   openai | espeak   default: openai when OPENAI_API_KEY is set, else espeak

With LLM=none the agent needs no key at all: it speaks CANNED_TEXT with espeak-ng every
CANNED_REPEAT_SECONDS, so the demo shows a talking avatar without any cloud account. OPENAI_BASE_URL (read by
the OpenAI SDK) points the openai choices at any OpenAI-compatible server. To add another provider, install
its plugin (requirements.in) and add one line to LLMS, STTS or TTSS.

Run: python -m livekit.agents start agent.py   (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET from env)
"""

from __future__ import annotations

import asyncio
import logging
import os

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobProcess, room_io
from livekit.plugins import bithuman

from espeak_tts import EspeakTTS

logger = logging.getLogger("lipcast-demo-agent")

HAS_OPENAI_KEY = bool(os.environ.get("OPENAI_API_KEY"))
LIPCAST_URL = os.environ.get("LIPCAST_URL", "http://lipcast:8089/launch")
# lipcast's API_SECRET. The plugin requires one and also copies it into the avatar participant's attributes,
# which everyone in the room can read: use a secret only for lipcast.
LIPCAST_API_SECRET = os.environ.get("LIPCAST_API_SECRET", "")
AVATAR_IMAGE = os.environ.get("AVATAR_IMAGE", "/app/avatar.jpg")
INSTRUCTIONS = os.environ.get(
    "AGENT_INSTRUCTIONS",
    "You are a friendly assistant shown as a talking portrait. Keep answers short and spoken-style.",
)
CANNED_TEXT = os.environ.get(
    "CANNED_TEXT",
    "Hello! I am a lipcast avatar. My voice comes from espeak, and my face is rendered live on your own machine.",
)
CANNED_REPEAT_SECONDS = float(os.environ.get("CANNED_REPEAT_SECONDS", "12"))


def _openai():
    from livekit.plugins import openai  # imported only when chosen

    return openai


LLMS = {
    "openai": lambda: _openai().LLM(model=os.environ.get("LLM_MODEL", "gpt-4o-mini")),
}
STTS = {
    "openai": lambda: _openai().STT(model=os.environ.get("STT_MODEL", "gpt-4o-mini-transcribe")),
}
TTSS = {
    "openai": lambda: _openai().TTS(
        model=os.environ.get("TTS_MODEL", "gpt-4o-mini-tts"), voice=os.environ.get("TTS_VOICE", "ash")
    ),
    "espeak": lambda: EspeakTTS(voice=os.environ.get("ESPEAK_VOICE", "en-us")),
}


def choice(var: str, table: dict, default: str) -> str:
    value = os.environ.get(var, "").strip().lower() or default
    if value != "none" and value not in table:
        raise SystemExit(f"{var}={value!r}: choose one of {', '.join([*table, 'none'])}")
    return value


LLM_CHOICE = choice("LLM", LLMS, "openai" if HAS_OPENAI_KEY else "none")
TTS_CHOICE = choice("TTS", TTSS, "openai" if HAS_OPENAI_KEY else "espeak")
STT_CHOICE = choice("STT", STTS, "openai") if LLM_CHOICE != "none" else "none"
if TTS_CHOICE == "none":
    raise SystemExit("TTS=none: the avatar needs speech; choose espeak for a TTS without a key")


def prewarm(proc: JobProcess) -> None:
    if LLM_CHOICE != "none":
        from livekit.plugins import silero

        proc.userdata["vad"] = silero.VAD.load()


# livekit-agents' default load is the host's CPU use, and a demo host's CPU is mostly lipcast's: on a CPU-only
# machine the avatar's rendering alone keeps it above the 0.7 threshold, the worker marks itself unavailable and
# the server dispatches no job ("no servers available"), so a viewer waits forever. The agent is light: its load
# is the share of AGENT_MAX_JOBS it runs.
AGENT_MAX_JOBS = max(1, int(os.environ.get("AGENT_MAX_JOBS", "4")))


def job_load(server: AgentServer) -> float:
    return min(1.0, len(server.active_jobs) / AGENT_MAX_JOBS)


# One idle process is plenty for a demo (the default is one per CPU).
server = AgentServer(
    setup_fnc=prewarm,
    num_idle_processes=int(os.environ.get("AGENT_IDLE_PROCESSES", "1")),
    load_fnc=job_load,
    load_threshold=1.0,
)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.wait_for_participant()  # a viewer; the avatar is launched only when someone is watching
    conversational = LLM_CHOICE != "none"
    logger.info("starting: LLM=%s STT=%s TTS=%s lipcast=%s", LLM_CHOICE, STT_CHOICE, TTS_CHOICE, LIPCAST_URL)

    models = {"tts": TTSS[TTS_CHOICE]()}
    if conversational:
        models.update(llm=LLMS[LLM_CHOICE](), stt=STTS[STT_CHOICE](), vad=ctx.proc.userdata["vad"])
    session = AgentSession(**models)

    # POST /launch to lipcast; the plugin then streams the agent's speech to the avatar (lk.audio_stream) and
    # the avatar publishes it, lip-synced, as video + audio on the agent's behalf.
    avatar = bithuman.AvatarSession(api_url=LIPCAST_URL, api_secret=LIPCAST_API_SECRET, avatar_image=AVATAR_IMAGE)
    await avatar.start(session, room=ctx.room)

    await session.start(
        agent=Agent(instructions=INSTRUCTIONS),
        room=ctx.room,
        # the avatar publishes the speech; without an LLM nobody listens to the viewer's microphone
        room_options=room_io.RoomOptions(audio_output=False, audio_input=conversational),
    )

    if conversational:
        session.generate_reply(instructions="Greet the user in one short sentence.")
        return

    # No-key mode: say the canned sentence, pause, repeat, until the session closes (the viewer left).
    closed = asyncio.Event()
    session.on("close", lambda _ev: closed.set())
    while not closed.is_set():
        try:
            await session.say(CANNED_TEXT, allow_interruptions=False)
        except RuntimeError:  # the session closed meanwhile
            break
        try:
            await asyncio.wait_for(closed.wait(), timeout=CANNED_REPEAT_SECONDS)
        except asyncio.TimeoutError:
            pass
