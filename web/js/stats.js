// Connection statistics from RTCPeerConnection.getStats(), sampled once a second, for the
// overlay and for tests (window.retrofarm.stats).

export const STATS_INTERVAL_MS = 1000;

/** An empty sample (shown before the first one). */
export function emptyStats() {
  return {
    at: 0,
    rttMs: null,
    bitrateKbps: null,
    fps: null,
    framesDecoded: 0,
    framesDropped: 0,
    width: 0,
    height: 0,
    codec: null,
    audioCodec: null,
    audioPackets: 0,
    audioLevel: null,
    bytesReceived: 0,
    packetsLost: 0,
    freezes: 0,
    freezeMs: 0,
  };
}

/** How often the page tells the game server what it received (a `report` on `control`). */
export const REPORT_INTERVAL_MS = 5000;

/**
 * The `report` game command for what was decoded between samples `from` and `to`: frames,
 * milliseconds, freezes and their length, within the bounds the server accepts
 * (docs/protocol.md); null when there is nothing to report (no interval, a restarted stream).
 */
export function viewerReport(from, to) {
  const ms = Math.round(to.at - from.at);
  const frames = to.framesDecoded - from.framesDecoded;
  const freezes = to.freezes - from.freezes;
  const freezeMs = Math.round(to.freezeMs - from.freezeMs);
  if (!(from.at > 0) || ms < 1 || ms > 60_000 || frames < 0 || freezes < 0 || freezeMs < 0) return null;
  return {
    frames: Math.min(frames, Math.floor(ms / 2)),
    ms,
    freezes: Math.min(freezes, Math.floor(ms / 16) + 1),
    freeze_ms: Math.min(freezeMs, ms),
  };
}

/**
 * Turns a getStats() report into a sample; `prev` (the previous sample) gives the rates.
 */
export function summarize(report, prev, now = performance.now()) {
  const s = emptyStats();
  s.at = now;
  const byId = new Map();
  report.forEach((r) => byId.set(r.id, r));
  let selectedPair = null;
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      s.framesDecoded = r.framesDecoded ?? 0;
      s.framesDropped = r.framesDropped ?? 0;
      s.freezes = r.freezeCount ?? 0;
      s.freezeMs = (r.totalFreezesDuration ?? 0) * 1000;
      s.width = r.frameWidth ?? 0;
      s.height = r.frameHeight ?? 0;
      s.fps = r.framesPerSecond ?? null;
      s.codec = byId.get(r.codecId)?.mimeType ?? null;
      s.bytesReceived += r.bytesReceived ?? 0;
      s.packetsLost += r.packetsLost ?? 0;
    } else if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      s.audioPackets = r.packetsReceived ?? 0;
      s.audioLevel = r.audioLevel ?? null;
      s.audioCodec = byId.get(r.codecId)?.mimeType ?? null;
      s.bytesReceived += r.bytesReceived ?? 0;
      s.packetsLost += r.packetsLost ?? 0;
    } else if (r.type === 'transport' && r.selectedCandidatePairId) {
      selectedPair = byId.get(r.selectedCandidatePairId) ?? selectedPair;
    }
  });
  if (!selectedPair) {
    report.forEach((r) => {
      if (r.type === 'candidate-pair' && r.state === 'succeeded' && r.nominated) selectedPair = r;
    });
  }
  if (selectedPair?.currentRoundTripTime !== undefined) s.rttMs = selectedPair.currentRoundTripTime * 1000;
  if (prev && prev.at > 0 && now > prev.at) {
    const dt = (now - prev.at) / 1000;
    s.bitrateKbps = Math.max(0, ((s.bytesReceived - prev.bytesReceived) * 8) / 1000 / dt);
    if (s.fps === null) s.fps = Math.max(0, (s.framesDecoded - prev.framesDecoded) / dt);
  }
  return s;
}

const fmt = (v, digits = 0, unit = '') => (v === null || v === undefined ? '–' : `${v.toFixed(digits)}${unit}`);

/** The overlay's rows: [label, text]. */
export function rows(s) {
  return [
    ['RTT', fmt(s.rttMs, 0, ' ms')],
    ['Bitrate', fmt(s.bitrateKbps, 0, ' kbit/s')],
    ['FPS', fmt(s.fps, 0)],
    ['Frames', String(s.framesDecoded)],
    ['Size', s.width ? `${s.width}×${s.height}` : '–'],
    ['Codec', s.codec ?? '–'],
    ['Audio pkts', String(s.audioPackets)],
    ['Lost pkts', String(s.packetsLost)],
  ];
}

/** Samples a peer once a second and renders into `element` (a <dl>). */
export class StatsSampler {
  constructor(element, onSample) {
    this.element = element;
    this.onSample = onSample ?? (() => {});
    this.peer = null;
    this.last = emptyStats();
    this.timer = null;
    this.render();
  }

  start(peer) {
    this.stop();
    this.peer = peer;
    this.last = emptyStats();
    this.timer = setInterval(() => this.sample(), STATS_INTERVAL_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.peer = null;
  }

  /** Takes a sample now (also used by tests through window.retrofarm.pollStats). */
  async sample() {
    const peer = this.peer;
    if (!peer) return this.last;
    let report;
    try {
      report = await peer.getStats();
    } catch {
      return this.last;
    }
    if (peer !== this.peer) return this.last;
    this.last = summarize(report, this.last.at > 0 ? this.last : null);
    this.render();
    this.onSample(this.last);
    return this.last;
  }

  render() {
    const frag = document.createDocumentFragment();
    for (const [label, text] of rows(this.last)) {
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      dd.textContent = text;
      frag.append(dt, dd);
    }
    this.element.replaceChildren(frag);
  }
}
