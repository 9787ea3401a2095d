"""A text-to-speech for livekit-agents that needs no key and no network: espeak-ng (Debian package).

It runs `espeak-ng -w <tmp.wav>` per utterance and hands the PCM to the agent (mono int16, 22050 Hz for the
usual voices). The voice is robotic, but its timing is exact, which is all a lip-sync demo needs.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import wave

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, tts, utils

ESPEAK_RATE = 22050  # espeak-ng's output rate for its standard voices; the WAV header is what counts


class EspeakTTS(tts.TTS):
    def __init__(self, *, voice: str = "en-us", words_per_minute: int = 160, binary: str = "espeak-ng") -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False), sample_rate=ESPEAK_RATE, num_channels=1
        )
        self._voice = voice
        self._wpm = words_per_minute
        self._binary = binary

    @property
    def model(self) -> str:
        return self._voice

    @property
    def provider(self) -> str:
        return "espeak-ng"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _EspeakStream(tts=self, input_text=text, conn_options=conn_options)


class _EspeakStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        engine: EspeakTTS = self._tts  # type: ignore[assignment]
        fd, path = tempfile.mkstemp(suffix=".wav")
        os.close(fd)
        try:
            proc = await asyncio.create_subprocess_exec(
                engine._binary, "-v", engine._voice, "-s", str(engine._wpm), "-w", path, "--", self._input_text,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {err.decode(errors='replace').strip()}")
            with wave.open(path, "rb") as w:
                if w.getsampwidth() != 2:
                    raise RuntimeError(f"espeak-ng wrote {8 * w.getsampwidth()}-bit audio, expected 16-bit")
                rate, channels, pcm = w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())
        finally:
            os.unlink(path)
        output_emitter.initialize(
            request_id=utils.shortuuid(), sample_rate=rate, num_channels=channels, mime_type="audio/pcm"
        )
        output_emitter.push(pcm)
        output_emitter.flush()
