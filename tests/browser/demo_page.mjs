// The demo page (deploy/web) in a real browser, for tests/e2e/browser.rs: Debian's chromium, headless, driven by
// playwright-core (which never downloads a browser). Opens the page, presses Join as a user would, waits for the
// avatar's <video> to play, and measures what a person would see and hear:
//   - the video plays: currentTime twice, some seconds apart; videoWidth x videoHeight;
//   - the audio is attached: an <audio> element whose stream has a live audio track, playing;
//   - the mouth moves with the speech: the mouth area is read through a canvas on every presented frame
//     (requestVideoFrameCallback) together with the loudness of the avatar's audio (Web Audio analyser on the
//     <audio> element's stream; the receiver's RTP audio level when the analyser hears nothing), and frames
//     in speech are compared with frames in silence;
//   - a screenshot of the page (while the avatar speaks, when it does within the wait).
// Prints progress lines ("browser: ...") and, last, one JSON line with the figures; the Rust test asserts.
//
// Configuration: one JSON argument {url, out_dir, profile_dir, mouth: [x, y] (normalised), box: [w, h]
// (fraction of the frame), sample_seconds, play_timeout_ms, chromium}.

import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const cfg = JSON.parse(process.argv[2]);
const say = (msg) => console.error(`browser: ${msg}`);
const t0 = Date.now();
const since = () => ((Date.now() - t0) / 1000).toFixed(2);

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // Chromium hides its host candidates behind random mDNS names (.local) unless the page has camera or
  // microphone permission; the test namespace has no mDNS responder and livekit-server, without STUN or TURN
  // here, then never connects the browser (seen: "removing participant without connection"). Users reach
  // the server with server-reflexive or TURN candidates; here the host candidate stands in for them.
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

const result = { ok: false, errors: [], console: [] };
let context;
try {
  // A fresh profile (launchPersistentContext passes it as --user-data-dir).
  context = await chromium.launchPersistentContext(cfg.profile_dir, {
    executablePath: cfg.chromium,
    headless: true,
    args: FLAGS,
    viewport: { width: 760, height: 760 },
  });
  result.browser_version = context.browser()?.version() ?? null;
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => {
    const line = `${m.type()}: ${m.text()}`;
    result.console.push(line);
    if (m.type() === "error" || m.type() === "warning") say(`console ${line}`);
  });
  page.on("pageerror", (e) => {
    result.errors.push(String(e));
    say(`page error: ${e}`);
  });
  // The receivers' RTP audio level is the fallback loudness source: keep the page's peer connections in reach
  // (a probe of the test; the page is not changed).
  await page.addInitScript(() => {
    const Orig = window.RTCPeerConnection;
    window.__lipcastPcs = [];
    window.RTCPeerConnection = function (...args) {
      const pc = new Orig(...args);
      window.__lipcastPcs.push(pc);
      return pc;
    };
    window.RTCPeerConnection.prototype = Orig.prototype;
    Object.setPrototypeOf(window.RTCPeerConnection, Orig);
  });

  await page.goto(cfg.url, { waitUntil: "load" });
  say(`${since()} s: page loaded: ${await page.title()}`);
  // As a user: press Join (the room field keeps its default).
  result.join_clicked_at = Date.now() / 1000;
  await page.click("#join");
  say(`${since()} s: Join pressed`);

  // The avatar's video is in the stage and plays.
  await page.waitForFunction(
    () => {
      const v = document.querySelector("#stage video");
      return v && v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0;
    },
    null,
    { timeout: cfg.play_timeout_ms, polling: 50 },
  );
  result.video_playing_at = Date.now() / 1000;
  say(`${since()} s: the avatar's video plays`);
  const probe = () =>
    page.evaluate(() => {
      const v = document.querySelector("#stage video");
      return {
        currentTime: v.currentTime,
        wall: performance.now() / 1000,
        videoWidth: v.videoWidth,
        videoHeight: v.videoHeight,
        paused: v.paused,
        readyState: v.readyState,
      };
    });
  const first = await probe();
  await page.waitForTimeout(3000);
  const second = await probe();
  result.video = { first, second };
  say(
    `${since()} s: currentTime ${first.currentTime.toFixed(3)} -> ${second.currentTime.toFixed(3)} over ` +
      `${(second.wall - first.wall).toFixed(3)} s; ${second.videoWidth}x${second.videoHeight}`,
  );

  // The avatar's audio: an <audio> element (the page hides it) with a live track, playing.
  result.audio = await page.evaluate(() =>
    [...document.querySelectorAll("audio")].map((a) => ({
      tracks: a.srcObject ? a.srcObject.getAudioTracks().map((t) => ({ readyState: t.readyState, muted: t.muted })) : [],
      paused: a.paused,
      currentTime: a.currentTime,
      hidden: a.hidden,
    })),
  );
  say(`${since()} s: audio elements ${JSON.stringify(result.audio)}`);

  // Loudness and the mouth area on every presented frame.
  say(`${since()} s: sampling the mouth area for ${cfg.sample_seconds} s`);
  const sampled = await page.evaluate(
    async ({ mouth, box, seconds }) => {
      const v = document.querySelector("#stage video");
      const a = [...document.querySelectorAll("audio")].find((el) => el.srcObject?.getAudioTracks().length);
      const ctx = new AudioContext();
      await ctx.resume();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 1024;
      ctx.createMediaStreamSource(a.srcObject).connect(analyser);
      const buf = new Float32Array(analyser.fftSize);
      const rtpLevel = () => {
        for (const pc of window.__lipcastPcs || []) {
          for (const r of pc.getReceivers()) {
            if (r.track?.kind !== "audio") continue;
            const s = r.getSynchronizationSources();
            if (s.length) return s[0].audioLevel ?? 0;
          }
        }
        return null;
      };
      const W = v.videoWidth;
      const H = v.videoHeight;
      const bw = Math.max(8, Math.round(W * box[0]));
      const bh = Math.max(8, Math.round(H * box[1]));
      const x0 = Math.min(W - bw, Math.max(0, Math.round(mouth[0] * W - bw / 2)));
      const y0 = Math.min(H - bh, Math.max(0, Math.round(mouth[1] * H - bh / 2)));
      const canvas = document.createElement("canvas");
      canvas.width = W;
      canvas.height = H;
      const g = canvas.getContext("2d", { willReadFrequently: true });
      const frames = [];
      const start = performance.now();
      await new Promise((resolve) => {
        const step = (now, meta) => {
          g.drawImage(v, 0, 0, W, H);
          const d = g.getImageData(x0, y0, bw, bh).data;
          const gray = new Uint8Array(bw * bh);
          for (let i = 0; i < gray.length; i++) {
            gray[i] = (d[4 * i] * 299 + d[4 * i + 1] * 587 + d[4 * i + 2] * 114) / 1000;
          }
          analyser.getFloatTimeDomainData(buf);
          let sum = 0;
          for (const x of buf) sum += x * x;
          frames.push({
            t: (now - start) / 1000,
            media: meta.mediaTime,
            rms: Math.sqrt(sum / buf.length),
            rtp: rtpLevel(),
            w: meta.width,
            gray,
          });
          if (now - start < seconds * 1000) v.requestVideoFrameCallback(step);
          else resolve();
        };
        v.requestVideoFrameCallback(step);
      });
      window.__lipcastLevel = () => {
        analyser.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const x of buf) sum += x * x;
        return { rms: Math.sqrt(sum / buf.length), rtp: rtpLevel() };
      };

      // Loudness: the analyser's, unless it heard nothing at all (then the receiver's RTP audio level).
      const maxRms = Math.max(...frames.map((f) => f.rms));
      const source = maxRms > 1e-4 ? "analyser" : "rtp_audio_level";
      const level = frames.map((f) => (source === "analyser" ? f.rms : (f.rtp ?? 0)));
      const sorted = [...level].sort((x, y) => x - y);
      const peak = sorted[Math.floor(0.95 * (sorted.length - 1))];
      const loudAt = Math.max(0.15 * peak, source === "analyser" ? 0.005 : 0.005);
      const quietAt = Math.max(0.03 * peak, 1e-4);
      // Speech: loud now. Silence: quiet for 0.6 s either side (the mouth closes after the last phoneme).
      const speech = [];
      const silence = [];
      frames.forEach((f, i) => {
        if (level[i] >= loudAt) speech.push(i);
        else if (frames.every((o, j) => Math.abs(o.t - f.t) > 0.6 || level[j] < quietAt)) silence.push(i);
      });
      // The mouth at rest: the mean of the silent frames; each frame's difference from it, in grey levels.
      const n = bw * bh;
      const rest = new Float64Array(n);
      for (const i of silence) for (let k = 0; k < n; k++) rest[k] += frames[i].gray[k] / silence.length;
      const diff = frames.map((f) => {
        let s = 0;
        for (let k = 0; k < n; k++) s += Math.abs(f.gray[k] - rest[k]);
        return s / n;
      });
      const mean = (idx) => idx.reduce((s, i) => s + diff[i], 0) / Math.max(1, idx.length);
      const p90 = (idx) => {
        const v2 = idx.map((i) => diff[i]).sort((x, y) => x - y);
        return v2.length ? v2[Math.floor(0.9 * (v2.length - 1))] : 0;
      };
      const duration = frames.length > 1 ? frames[frames.length - 1].t - frames[0].t : 0;
      // Lip sync as the page shows it: the lag (in frames) at which the loudness envelope (smoothed over
      // +-3 frames) best correlates with the mouth's difference from rest; positive: the mouth follows the sound.
      const smooth = level.map((_, i) => {
        const w = level.slice(Math.max(0, i - 3), i + 4);
        return w.reduce((x, y) => x + y, 0) / w.length;
      });
      const pearson = (x, y) => {
        const mx = x.reduce((p, q) => p + q, 0) / x.length;
        const my = y.reduce((p, q) => p + q, 0) / y.length;
        let num = 0;
        let dx = 0;
        let dy = 0;
        for (let i = 0; i < x.length; i++) {
          num += (x[i] - mx) * (y[i] - my);
          dx += (x[i] - mx) ** 2;
          dy += (y[i] - my) ** 2;
        }
        return dx > 0 && dy > 0 ? num / Math.sqrt(dx * dy) : 0;
      };
      let sync = { lag_frames: 0, corr: -1 };
      for (let lag = -25; lag <= 25; lag++) {
        const x = lag >= 0 ? smooth.slice(0, smooth.length - lag) : smooth.slice(-lag);
        const y = lag >= 0 ? diff.slice(lag) : diff.slice(0, diff.length + lag);
        const c = pearson(x, y);
        if (c > sync.corr) sync = { lag_frames: lag, corr: c };
      }
      const frameS = frames.length > 1 ? duration / (frames.length - 1) : 0.04;
      return {
        box: { x: x0, y: y0, w: bw, h: bh },
        frames: frames.length,
        seconds: duration,
        fps: duration > 0 ? (frames.length - 1) / duration : 0,
        level_source: source,
        level_peak: peak,
        loud_at: loudAt,
        speech_frames: speech.length,
        silence_frames: silence.length,
        speech_diff: mean(speech),
        silence_diff: mean(silence),
        speech_diff_p90: p90(speech),
        mouth_lag_ms: sync.lag_frames * frameS * 1000,
        mouth_lag_corr: sync.corr,
        silence_diff_p90: p90(silence),
        series: frames.map((f, i) => [
          +f.t.toFixed(3),
          +f.media.toFixed(3),
          +f.rms.toFixed(5),
          f.rtp === null ? null : +f.rtp.toFixed(5),
          +diff[i].toFixed(3),
        ]),
      };
    },
    { mouth: cfg.mouth, box: cfg.box, seconds: cfg.sample_seconds },
  );
  writeFileSync(
    join(cfg.out_dir, "browser-mouth-series.json"),
    JSON.stringify({ columns: ["t", "media_time", "rms", "rtp_level", "mouth_diff"], rows: sampled.series }),
  );
  delete sampled.series;
  result.mouth = sampled;
  say(`${since()} s: mouth ${JSON.stringify(sampled)}`);

  // The screenshot, while the avatar speaks if it does within 20 s.
  let speaking = false;
  for (let i = 0; i < 200 && !speaking; i++) {
    const l = await page.evaluate(() => window.__lipcastLevel());
    const v = sampled.level_source === "analyser" ? l.rms : (l.rtp ?? 0);
    speaking = v >= sampled.loud_at;
    if (!speaking) await page.waitForTimeout(100);
  }
  result.screenshot = join(cfg.out_dir, "demo-page.png");
  await page.screenshot({ path: result.screenshot });
  result.screenshot_while_speaking = speaking;
  result.status_text = await page.evaluate(() => document.getElementById("status").textContent);
  say(`${since()} s: screenshot ${result.screenshot} (speaking: ${speaking}); status: ${result.status_text}`);

  // Leave as a user would.
  await page.click("#leave");
  await page.waitForFunction(() => !document.querySelector("#stage video"), null, { timeout: 10000 });
  result.left = true;
  result.ok = true;
} catch (e) {
  result.errors.push(`test script: ${e?.stack || e}`);
  say(`failed: ${e?.stack || e}`);
} finally {
  result.seconds = (Date.now() - t0) / 1000;
  result.console = result.console.slice(-100);
  if (context) await context.close().catch(() => {});
  console.log(JSON.stringify(result));
}
