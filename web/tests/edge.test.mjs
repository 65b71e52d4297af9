// Edge security with real components: (1) a stream relayed by a real TURN server (coturn with
// `use-auth-secret`) on credentials the coordinator minted for the session, the page forced to
// relay candidates with ?relay=1; (2) the page, /ws and the workers' /ping over HTTPS/WSS with
// the operator's (here self-signed) certificate.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import {
  GAME,
  launchBrowser,
  openPage,
  scenario,
  selfSignedCert,
  sleep,
  startCluster,
  startTurnServer,
  testDir,
  waitForState,
} from './harness.mjs';

/** Frames the page must decode to count as playing. */
const FRAMES = 60;
const TTL_SECS = 600;

let browser;

before(async () => {
  // The self-signed certificate of the HTTPS scenario.
  browser = await launchBrowser({ args: ['--ignore-certificate-errors'] });
});

after(async () => {
  await browser?.close();
});

/**
 * Runs in the page before its scripts: keeps its RTCPeerConnections with their configurations
 * (window.__peers), and the URLs of its WebSockets and fetches (window.__urls).
 */
function spy() {
  const OriginalPc = window.RTCPeerConnection;
  window.__peers = [];
  window.RTCPeerConnection = class extends OriginalPc {
    constructor(config, ...rest) {
      super(config, ...rest);
      window.__peers.push({ pc: this, config: JSON.parse(JSON.stringify(config ?? {})) });
    }
  };
  window.__urls = { ws: [], fetch: [] };
  const OriginalWs = window.WebSocket;
  window.WebSocket = class extends OriginalWs {
    constructor(url, ...rest) {
      super(url, ...rest);
      window.__urls.ws.push(String(url));
    }
  };
  const originalFetch = window.fetch.bind(window);
  window.fetch = (input, ...rest) => {
    window.__urls.fetch.push(String(input?.url ?? input));
    return originalFetch(input, ...rest);
  };
}

/** The newest peer connection's configuration and its selected candidate pair's two ends. */
function selectedPair(page) {
  return page.evaluate(async () => {
    const last = window.__peers.at(-1);
    if (!last) return null;
    const report = await last.pc.getStats();
    const byId = new Map();
    report.forEach((r) => byId.set(r.id, r));
    let pair = null;
    report.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = byId.get(r.selectedCandidatePairId);
    });
    const end = (id) => {
      const c = byId.get(id);
      return c && { type: c.candidateType, address: c.address, port: c.port, protocol: c.protocol, relayProtocol: c.relayProtocol };
    };
    return { config: last.config, pair: pair && { state: pair.state, local: end(pair.localCandidateId), remote: end(pair.remoteCandidateId) } };
  });
}

/** Starts the game and waits until `frames` are decoded. */
async function play(page, frames = FRAMES) {
  await page.getByRole('button', { name: new RegExp(GAME) }).click({ timeout: 15_000 });
  await waitForState(page, (s) => s.phase === 'playing', { what: 'game_started' });
  await waitForState(page, (s) => s.rtc === 'connected', { what: 'RTCPeerConnection connected', timeout: 20_000 });
  const end = Date.now() + 15_000;
  for (;;) {
    const stats = await page.evaluate(() => window.retrofarm.pollStats());
    if (stats.framesDecoded >= frames) return stats;
    const s = await page.evaluate(() => window.retrofarm.state);
    if (s.error) assert.fail(`the page shows error ${s.error} (${s.errorMessage}) instead of the stream`);
    if (Date.now() > end) assert.fail(`fewer than ${frames} frames decoded within 15 s: ${JSON.stringify(stats)}`);
    await sleep(150);
  }
}

scenario('relay only (?relay=1): the stream goes through coturn on the session\'s minted credentials', { timeout: 90_000 }, async (t) => {
  const dir = testDir();
  const turn = await startTurnServer(dir);
  if (turn.skipReason) return t.skip(turn.skipReason);
  const cluster = await startCluster({
    dir,
    workers: [{ id: 'w1', zone: 'eu' }],
    coordinatorArgs: ['--turn-urls', turn.url, '--turn-secret', turn.secret, '--turn-ttl-secs', String(TTL_SECS)],
  });
  const { page, context } = await openPage(browser, `${cluster.url}/?relay=1`, { name: 'relay player', initScript: spy });
  try {
    const stats = await play(page);
    const { config, pair } = await selectedPair(page);
    t.diagnostic(`selected pair: ${JSON.stringify(pair)}; ${stats.framesDecoded} frames decoded`);

    // The page asked for relay candidates only, with the coordinator's minted credentials.
    assert.equal(config.iceTransportPolicy, 'relay');
    const server = config.iceServers.find((s) => [s.urls].flat().includes(turn.url));
    assert.ok(server, `init hands out the TURN server: ${JSON.stringify(config.iceServers)}`);
    const [expiry, session] = server.username.split(':');
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(Number(expiry) - (now + TTL_SECS)) < 60, `expiry ${expiry} is about now + ${TTL_SECS} s`);
    assert.equal(session, (await page.evaluate(() => window.retrofarm.state.session)), 'the user name names the session');
    assert.match(server.credential, /^[A-Za-z0-9+/]{27}=$/, 'base64 of a 20-byte HMAC-SHA1');

    // The media path: the browser's end is a relay candidate on coturn.
    assert.equal(pair?.state, 'succeeded', JSON.stringify(pair));
    assert.equal(pair.local.type, 'relay', `the selected local candidate is a relay one: ${JSON.stringify(pair)}`);
    assert.ok(stats.framesDecoded >= FRAMES);
    // And coturn did the relaying for a user it authenticated.
    assert.match(turn.proc.output, new RegExp(`user <${expiry}:${session}>`), 'coturn logs the minted user');
  } finally {
    await context.close();
    await cluster.stop();
    await turn.stop();
  }
});

scenario('HTTPS: the page, wss:// signaling and https:// pings with the operator\'s certificate', { timeout: 90_000 }, async (t) => {
  const dir = testDir();
  const tls = selfSignedCert(dir);
  const workerTls = ['--tls-cert', tls.cert, '--tls-key', tls.key];
  const cluster = await startCluster({ dir, tls, workers: [{ id: 'w1', zone: 'eu', extra: workerTls }] });
  assert.ok(cluster.url.startsWith('https://'));
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'https player', initScript: spy });
  try {
    assert.equal(new URL(page.url()).protocol, 'https:');
    const s = await waitForState(page, (s) => s.phase === 'choosing', { what: 'init' });
    const urls = await page.evaluate(() => window.__urls);
    t.diagnostic(`WebSockets ${urls.ws.join(', ')}; fetches ${urls.fetch.join(', ')}`);
    // Signaling over wss://; the worker pinged over https:// (its listener speaks nothing else)
    // and it answered: a number, not left out.
    assert.deepEqual(urls.ws.map((u) => new URL(u).protocol), ['wss:']);
    const pings = urls.fetch.filter((u) => u.endsWith('/ping'));
    assert.ok(pings.length > 0 && pings.every((u) => u.startsWith('https://127.0.0.1:')), JSON.stringify(pings));
    assert.equal(typeof s.latency?.w1, 'number', `the https ping answered: ${JSON.stringify(s.latency)}`);
    const stats = await play(page);
    t.diagnostic(`${stats.framesDecoded} frames decoded`);
    assert.ok(stats.framesDecoded >= FRAMES);
  } finally {
    await context.close();
    await cluster.stop();
  }
});
