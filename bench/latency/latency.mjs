#!/usr/bin/env node
// `latency`: key press → presented video frame, in a real headless Chromium playing a room of
// the probe core (bench/probe-core) through the real coordinator and worker.
//
// The page's own input code sends the key (X = RetroPad A) on the data channel; the probe core
// draws the buttons it read into its picture (bench/probe-core/src/marker.rs: five rows of
// 16x16 black/white cells, sync word 0xF0A5, counter, ~counter, buttons, ~buttons). A
// requestVideoFrameCallback on the page's <video> draws each presented frame into a canvas and
// reads the marker; the latency of a press is the callback's timestamp (the rendering update in
// which the page first sees the presented frame) minus the time the keydown reached the page
// (both on the performance.now() clock). Chromium's own metadata.presentationTime and
// receiveTime are printed too, but they are derived stamps: with zero playout delay they can
// even precede the key press. Presses come at random intervals so they fall on every phase of
// the 60 Hz frame clock; releases are measured too.
//
// usage: node bench/latency/latency.mjs [--quick] [--presses N] [--bin-dir DIR] [--core PATH]
//                                       [--codecs h264,vp8] [--no-av-sync] [--playout-delay-hint]
//   --bin-dir: where retrofarm-coordinator and retrofarm-worker are
//              (default $RETROFARM_BIN_DIR, else <repo>/target/release)
//   --core:    the probe core (default <bin-dir>/libretrofarm_probe_core.so)
// Runs H264, then VP8 (`?codec=vp8`); says so and goes on when the worker cannot send VP8.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const QUICK = args.includes('--quick');
const CODECS = (opt('--codecs') ?? 'h264,vp8').split(',');
const PRESSES = Number(opt('--presses') ?? (QUICK ? 10 : 120));
const BIN_DIR = path.resolve(opt('--bin-dir') ?? process.env.RETROFARM_BIN_DIR ?? path.join(REPO, 'target', 'release'));
const CORE = path.resolve(opt('--core') ?? path.join(BIN_DIR, 'libretrofarm_probe_core.so'));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const GAME = 'Probe';
/**
 * Experiments on the receiving side (not what the web client does): `--no-av-sync` puts the
 * audio track in a stream of its own so Chromium does not hold video back to match audio;
 * `--playout-delay-hint` sets the video receiver's playoutDelayHint and jitterBufferTarget to 0.
 */
const FLAGS = { noAvSync: args.includes('--no-av-sync'), playoutDelayHint: args.includes('--playout-delay-hint') };
/** RetroPad A, which the page maps to the X key. */
const A = 1 << 8;

function skip(why) {
  console.log(`latency: SKIPPED: ${why}`);
  process.exit(0);
}

for (const [p, what] of [
  [path.join(BIN_DIR, 'retrofarm-coordinator'), 'build the workspace (cargo build --release --workspace)'],
  [path.join(BIN_DIR, 'retrofarm-worker'), 'build the workspace (cargo build --release --workspace)'],
  [CORE, 'build the probe core (cargo build --release -p retrofarm-probe-core)'],
  [CHROMIUM, 'apt-get install chromium'],
  [path.join(REPO, 'web', 'node_modules', 'playwright-core'), 'cd web && npm ci'],
  [path.join(REPO, 'web', 'tests', 'harness.mjs'), 'the web client tests are missing'],
]) {
  if (!fs.existsSync(p)) skip(`${p} is missing: ${what}`);
}

const { Proc, launchBrowser, freeTcpPort, freeUdpPort, waitForState, pageState, sleep } = await import(
  '../../web/tests/harness.mjs'
);

// ---- statistics ----------------------------------------------------------------------------

function percentile(values, p) {
  if (values.length === 0) return NaN;
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length, Math.max(1, Math.ceil((p / 100) * v.length))) - 1];
}

function summary(values) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const f = (x) => x.toFixed(1).padStart(6);
  return `n=${String(values.length).padStart(3)}  p50 ${f(percentile(values, 50))}  p99 ${f(percentile(values, 99))}  mean ${f(mean)}  min ${f(Math.min(...values))}  max ${f(Math.max(...values))} ms`;
}

/** Cumulative buckets of a histogram series in Prometheus text, as [[le, count]]. */
function buckets(text, name, label) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(label)) continue;
    const le = line.match(/le="([^"]+)"/)?.[1];
    const count = Number(line.trim().split(' ').pop());
    out.push([le === '+Inf' ? Infinity : Number(le), count]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** Quantile q of the difference of two cumulative bucket lists, interpolated in its bucket. */
function histQuantile(after, before, q) {
  const d = after.map(([le, c], i) => [le, c - (before[i]?.[1] ?? 0)]);
  const total = d.at(-1)?.[1] ?? 0;
  if (total <= 0) return NaN;
  const rank = q * total;
  let prev = [0, 0];
  for (const [le, c] of d) {
    if (c >= rank) {
      if (!Number.isFinite(le)) return prev[0];
      const span = c - prev[1];
      return prev[0] + (le - prev[0]) * (span > 0 ? (rank - prev[1]) / span : 1);
    }
    prev = [le, c];
  }
  return prev[0];
}

async function workerMetrics(addr) {
  const r = await fetch(`http://${addr}/metrics`);
  return r.text();
}

// ---- in the page ----------------------------------------------------------------------------

/**
 * Runs before the page's scripts: keeps every RTCPeerConnection for getStats(), and applies the
 * experiment flags (see EXPERIMENTS).
 */
function recordPeerConnections(flags) {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Original {
    constructor(...a) {
      super(...a);
      window.__pcs.push(this);
      if (flags.playoutDelayHint) {
        this.addEventListener('track', (e) => {
          e.receiver.playoutDelayHint = 0;
          e.receiver.jitterBufferTarget = 0;
        });
      }
    }
    setRemoteDescription(desc) {
      if (flags.noAvSync && desc?.sdp) {
        // Audio in a stream of its own: Chromium then stops delaying video to match audio.
        const sdp = desc.sdp.replace(/^(a=msid:)(\S+)( .*)$/gm, (line, a, stream, rest) =>
          /audio/i.test(rest) ? `${a}${stream}-audio${rest}` : line);
        return super.setRemoteDescription({ type: desc.type, sdp });
      }
      return super.setRemoteDescription(desc);
    }
  };
}

/** Reads the probe marker from every presented frame and times key presses against it. */
function installProbe(A) {
  const CELL = 16;
  const BITS = 16;
  const ROWS = 5;
  const SYNC = 0xf0a5;
  const video = document.getElementById('video');
  const canvas = document.createElement('canvas');
  canvas.width = 256;
  canvas.height = 240;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const P = { frames: 0, valid: 0, last: null, waiting: null, results: [], gaps: 0, receiveToPresent: [] };
  window.__probe = P;
  const decode = (data) => {
    const w = [];
    for (let row = 0; row < ROWS; row++) {
      let word = 0;
      for (let bit = 0; bit < BITS; bit++) {
        let sum = 0;
        const x0 = bit * CELL + CELL / 4;
        const y0 = row * CELL + CELL / 4;
        for (let y = y0; y < y0 + CELL / 2; y++) {
          for (let x = x0; x < x0 + CELL / 2; x++) {
            const i = (y * 256 + x) * 4;
            sum += (data[i] * 77 + data[i + 1] * 150 + data[i + 2] * 29) >> 8;
          }
        }
        word = ((word << 1) | (sum / (CELL * CELL / 4) >= 128 ? 1 : 0)) & 0xffff;
      }
      w.push(word);
    }
    if (w[0] !== SYNC || (w[1] ^ w[2]) !== 0xffff || (w[3] ^ w[4]) !== 0xffff) return null;
    return { counter: w[1], buttons: w[3] };
  };
  const onFrame = (now, meta) => {
    P.frames++;
    // WebRTC frames carry when their last packet arrived (same clock).
    if (meta.receiveTime !== undefined) P.receiveToPresent.push(meta.presentationTime - meta.receiveTime);
    ctx.drawImage(video, 0, 0, 256, 240);
    const m = decode(ctx.getImageData(0, 0, 256, ROWS * CELL).data);
    if (m) {
      P.valid++;
      if (P.last && ((m.counter - P.last.counter) & 0xffff) > 1) P.gaps++;
      const wait = P.waiting;
      if (wait && m.buttons === wait.want) {
        P.results.push({
          kind: wait.kind,
          presented: meta.presentationTime - wait.at,
          expected: meta.expectedDisplayTime - wait.at,
          callback: now - wait.at,
          seen: performance.now() - wait.at,
          received: meta.receiveTime === undefined ? null : meta.receiveTime - wait.at,
          counter: m.counter,
        });
        P.waiting = null;
      }
      P.last = m;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  // Capture phase on window: runs before the page's own key handler sends the input.
  window.addEventListener(
    'keydown',
    (e) => {
      if (e.code === 'KeyX' && !e.repeat) P.waiting = { kind: 'press', want: A, at: performance.now() };
    },
    { capture: true },
  );
  window.addEventListener(
    'keyup',
    (e) => {
      if (e.code === 'KeyX') P.waiting = { kind: 'release', want: 0, at: performance.now() };
    },
    { capture: true },
  );
}

/** Video receive statistics of the page's peer connection. */
async function videoStats() {
  const pc = window.__pcs?.at(-1);
  if (!pc) return null;
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach((r) => byId.set(r.id, r));
  let out = null;
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      out = {
        codec: byId.get(r.codecId)?.mimeType ?? null,
        framesDecoded: r.framesDecoded ?? 0,
        framesDropped: r.framesDropped ?? 0,
        jitterBufferDelay: r.jitterBufferDelay ?? 0,
        jitterBufferEmittedCount: r.jitterBufferEmittedCount ?? 0,
        totalDecodeTime: r.totalDecodeTime ?? 0,
        totalProcessingDelay: r.totalProcessingDelay ?? 0,
        freezeCount: r.freezeCount ?? 0,
      };
    }
  });
  return out;
}

// ---- the run --------------------------------------------------------------------------------

async function startCluster(dir) {
  const pki = path.join(dir, 'pki');
  const games = path.join(dir, 'games');
  fs.mkdirSync(games);
  fs.writeFileSync(path.join(games, `${GAME}.probe`), 'any content: the probe core never reads it\n');
  const config = path.join(dir, 'worker.toml');
  fs.writeFileSync(config, `[cores]\nprobe = "${path.basename(CORE)}"\n`);
  const [http, quic, workerMetrics] = [await freeTcpPort(), await freeUdpPort(), await freeTcpPort()];
  const coordinator = new Proc(
    'coordinator',
    path.join(BIN_DIR, 'retrofarm-coordinator'),
    ['run', '--http-listen', `127.0.0.1:${http}`, '--quic-listen', `127.0.0.1:${quic}`, '--metrics-listen', '127.0.0.1:0', '--pki-dir', pki,
      '--web-root', path.join(REPO, 'web')],
    dir,
  );
  await coordinator.waitLog('coordinator listening');
  const worker = new Proc(
    'worker',
    path.join(BIN_DIR, 'retrofarm-worker'),
    ['--config', config, '--id', 'latency', '--zone', 'local', '--coordinator', `127.0.0.1:${quic}`, '--pki-dir', pki,
      '--http-listen', '127.0.0.1:0', '--metrics-listen', `127.0.0.1:${workerMetrics}`, '--rtc-listen', '127.0.0.1:0', '--games-dir', games,
      '--cores-dir', path.dirname(CORE)],
    dir,
  );
  await worker.waitLog('registered with the coordinator');
  return { url: `http://127.0.0.1:${http}`, metrics: `127.0.0.1:${workerMetrics}`, procs: [worker, coordinator] };
}

/** Plays one room with `codec`; returns null when the codec is unavailable. */
async function measure(browser, cluster, codec) {
  const url = `${cluster.url}/?codec=${codec}`;
  const context = await browser.newContext({ viewport: { width: 900, height: 1100 } });
  await context.grantPermissions(['camera', 'microphone'], { origin: cluster.url });
  await context.addInitScript(recordPeerConnections, FLAGS);
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  try {
    await page.goto(url);
    await waitForState(page, (s) => s.phase === 'choosing', { timeout: 20_000, what: 'the game list' });
    await page.click(`#games button[data-game="${GAME}"]`);
    let s;
    try {
      s = await waitForState(page, (st) => st.rtc === 'connected' || !!st.error, { timeout: 20_000, what: 'a connection' });
    } catch (err) {
      return { unavailable: `no connection: ${err.message}` };
    }
    if (s.error) return { unavailable: `${s.error}: ${s.errorMessage ?? ''}` };
    await page.evaluate(installProbe, A);
    try {
      await page.waitForFunction(() => window.__probe.valid >= 30, null, { timeout: 15_000, polling: 100 });
    } catch {
      const st = await pageState(page);
      const p = await page.evaluate(() => window.__probe);
      return { unavailable: `no readable probe frames (presented ${p.frames}, error ${st?.error ?? 'none'})` };
    }
    const stats0 = await page.evaluate(videoStats);
    if (!stats0?.codec?.toLowerCase().endsWith(codec)) return { unavailable: `the browser decodes ${stats0?.codec}` };
    await page.focus('#screen');
    const metrics0 = await workerMetrics(cluster.metrics);
    const t0 = Date.now();
    let lost = 0;
    for (let i = 0; i < PRESSES; i++) {
      for (const [action, kind] of [['down', 'press'], ['up', 'release']]) {
        await sleep(60 + Math.random() * 140);
        await page.keyboard[action]('x');
        try {
          await page.waitForFunction(() => window.__probe.waiting === null, null, { timeout: 2000, polling: 5 });
        } catch {
          lost++;
          console.log(`  ${kind} ${i} never showed up`);
        }
      }
    }
    const seconds = (Date.now() - t0) / 1000;
    const [probe, stats1, metrics1] = await Promise.all([
      page.evaluate(() => window.__probe),
      page.evaluate(videoStats),
      workerMetrics(cluster.metrics),
    ]);
    const sent = ['sent', 'encoded'].map((stage) => {
      const b = (t) => buckets(t, 'retrofarm_stage_latency_seconds', `stage="${stage}"`);
      return [stage, histQuantile(b(metrics1), b(metrics0), 0.5) * 1e3, histQuantile(b(metrics1), b(metrics0), 0.99) * 1e3];
    });
    const frames = stats1.framesDecoded - stats0.framesDecoded;
    return {
      codec: stats1.codec,
      probe,
      lost,
      seconds,
      presentedFps: probe.frames / seconds,
      jitterMs: (1e3 * (stats1.jitterBufferDelay - stats0.jitterBufferDelay)) /
        Math.max(1, stats1.jitterBufferEmittedCount - stats0.jitterBufferEmittedCount),
      decodeMs: (1e3 * (stats1.totalDecodeTime - stats0.totalDecodeTime)) / Math.max(1, frames),
      processingMs: (1e3 * (stats1.totalProcessingDelay - stats0.totalProcessingDelay)) / Math.max(1, frames),
      dropped: stats1.framesDropped - stats0.framesDropped,
      freezes: stats1.freezeCount - stats0.freezeCount,
      server: sent,
    };
  } catch (err) {
    console.log(consoleLines.join('\n'));
    throw err;
  } finally {
    await context.close();
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'retrofarm-latency-'));
const flagText = Object.entries(FLAGS).filter(([, v]) => v).map(([k]) => k).join(', ');
console.log(`== latency: key press → presented frame, headless Chromium, probe core, ${PRESSES} presses per codec${QUICK ? ' (quick)' : ''}${flagText ? `; experiment: ${flagText}` : ''}`);
console.log(`host: ${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length} CPUs; load average ${os.loadavg()[0].toFixed(2)}`);
const cluster = await startCluster(dir);
const browser = await launchBrowser();
const results = {};
try {
  for (const codec of CODECS) {
    console.log(`\n-- ${codec.toUpperCase()}`);
    const r = await measure(browser, cluster, codec);
    if (r.unavailable) {
      console.log(`${codec.toUpperCase()} is unavailable: ${r.unavailable}`);
      continue;
    }
    results[codec] = r;
    const by = (kind, field) => r.probe.results.filter((x) => x.kind === kind).map((x) => x[field]);
    console.log(`decoded as ${r.codec}; ${r.presentedFps.toFixed(1)} frames presented per second; ${r.probe.gaps} counter gaps; ${r.dropped} frames dropped, ${r.freezes} freezes; ${r.lost} presses never seen`);
    console.log(`press   → presented frame: ${summary(by('press', 'callback'))}`);
    console.log(`release → presented frame: ${summary(by('release', 'callback'))}`);
    console.log(`press   → marker read:     ${summary(by('press', 'seen'))}  (performance.now() after reading it)`);
    console.log(`press   → presentationTime: ${summary(by('press', 'presented'))}  (Chromium's own stamp)`);
    console.log(`press   → expectedDisplay: ${summary(by('press', 'expected'))}`);
    const received = by('press', 'received').filter((x) => x !== null);
    if (received.length > 0) {
      console.log(`press   → frame received:  ${summary(received)}  (its last packet)`);
      console.log(`frame received → presented: ${summary(r.probe.receiveToPresent)}  (every frame)`);
    }
    console.log(
      `inside the browser, per frame: jitter buffer ${r.jitterMs.toFixed(1)} ms, decode ${r.decodeMs.toFixed(1)} ms, first packet → decoded ${r.processingMs.toFixed(1)} ms`,
    );
    for (const [stage, p50, p99] of r.server) {
      console.log(`worker: emulated → ${stage.padEnd(7)} p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
    }
  }
} finally {
  await browser.close();
  for (const p of cluster.procs) await p.kill();
  if (!process.env.RETROFARM_KEEP_LOGS) fs.rmSync(dir, { recursive: true, force: true });
  else console.log(`logs kept in ${dir}`);
}

console.log('\n== latency summary');
for (const [codec, r] of Object.entries(results)) {
  const press = r.probe.results.filter((x) => x.kind === 'press').map((x) => x.callback);
  console.log(`${codec.toUpperCase()}: key press → presented frame p50 ${percentile(press, 50).toFixed(1)} ms, p99 ${percentile(press, 99).toFixed(1)} ms over ${press.length} presses (target p50 <= 40 ms)`);
}
if (CODECS.includes('vp8') && !results.vp8) console.log('VP8: unavailable on this worker');
