// Test harness: real coordinator and worker processes on loopback, and a real headless Chromium
// driven by playwright-core. On a failure, `scenario` prints every process log and page console.

import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { chromium } from 'playwright-core';

export const REPO = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const BIN_DIR = process.env.RETROFARM_BIN_DIR ?? path.join(REPO, 'target', 'debug');
export const WEB_ROOT = path.join(REPO, 'web');
export const GAMES_DIR = path.join(REPO, 'games');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const TURNSERVER = process.env.TURNSERVER_PATH ?? '/usr/bin/turnserver';
export const GAME = 'Retrofarm Walk';

/** Chromium flags known to work here (shared/FACTS.md, "Chromium as a real client"). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

const LOG_FILTER = 'info,retrofarm=debug,farm_worker=debug,retrofarm_coordinator=debug,retrofarm_worker=debug';
const ANSI = /\x1b\[[0-9;]*m/g;

/** Everything that can explain a failure: live processes and pages register here. */
const diagnostics = new Set();

// ---- ports -----------------------------------------------------------------------------

export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---- processes -------------------------------------------------------------------------

function binary(name) {
  const p = path.join(BIN_DIR, name);
  if (!fs.existsSync(p)) {
    throw new Error(`${p} is missing: run \`cargo build --workspace --bins\` in ${REPO} first`);
  }
  return p;
}

/** A child process whose output is kept (ANSI colours stripped) and mirrored to a log file. */
export class Proc {
  constructor(name, bin, args, logDir) {
    this.name = name;
    this.args = args;
    this.output = '';
    this.exit = null;
    this.logFile = path.join(logDir, `${name}.log`);
    this.child = spawn(bin, args, {
      env: { ...process.env, RETROFARM_LOG: LOG_FILTER, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (chunk) => {
      const text = chunk.toString().replace(ANSI, '');
      this.output += text;
      fs.appendFileSync(this.logFile, text);
    };
    this.child.stdout.on('data', take);
    this.child.stderr.on('data', take);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.child.on('error', (err) => {
        this.output += `\n[spawn error] ${err.message}\n`;
        this.exit = { code: null, signal: null, error: err };
        resolve(this.exit);
      });
    });
    diagnostics.add(this);
  }

  /** Waits until the output contains `needle`; fails early if the process exits. */
  async waitLog(needle, timeoutMs = 20_000) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.output.includes(needle)) return;
      if (this.exit) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before logging "${needle}"`);
      await sleep(25);
    }
    throw new Error(`${this.name} did not log "${needle}" within ${timeoutMs} ms`);
  }

  describe() {
    const status = this.exit ? `exited ${JSON.stringify(this.exit)}` : `running (pid ${this.child.pid})`;
    return `----- ${this.name}: ${status}\n$ ${this.args.join(' ')}\n${this.output}`;
  }

  /** Stops the process with `signal` (SIGKILL after 2 s). A worker takes SIGINT: it saves its
   * rooms and stops at once, where SIGTERM would let its games play on for the drain time. */
  async kill(signal = 'SIGTERM') {
    if (!this.exit) {
      this.child.kill(signal);
      const done = await Promise.race([this.exited, sleep(2000).then(() => null)]);
      if (!done) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    diagnostics.delete(this);
  }
}

/**
 * Starts a coordinator, then the workers (in parallel) and waits until each has registered.
 * `workers`: [{id, zone, extra?: [flags]}]. `tls`: {cert, key} (PEM files) serves the page and
 * /ws over HTTPS/WSS (`cluster.url` is then https://…). `dir`: the folder for logs and state
 * (a fresh one by default). `gamesDir`: the workers' games folder (the repository's games/ by default).
 */
export async function startCluster({ workers = [{ id: 'w1', zone: 'eu' }], coordinatorArgs = [], tls = null, dir = null, gamesDir = GAMES_DIR } = {}) {
  dir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'retrofarm-web-'));
  const pki = path.join(dir, 'pki');
  const [httpPort, quicPort] = [await freeTcpPort(), await freeUdpPort()];
  const coordinatorArgv = [
      'run',
      '--http-listen', `127.0.0.1:${httpPort}`,
      '--metrics-listen', '127.0.0.1:0',
      '--quic-listen', `127.0.0.1:${quicPort}`,
      '--pki-dir', pki,
      '--web-root', WEB_ROOT,
      ...(tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : []),
      ...coordinatorArgs,
  ];
  const coordinator = new Proc('coordinator', binary('retrofarm-coordinator'), coordinatorArgv, dir);
  let restarts = 0;
  const cluster = {
    dir,
    pki,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${httpPort}`,
    quic: `127.0.0.1:${quicPort}`,
    coordinator,
    workers: new Map(),
    // skipRepeatedFrames: the worker's default is on; tests that count decoded frames of the
    // (mostly still) homebrew game turn it off so that every emulated frame is sent.
    async startWorker({ id, zone, skipRepeatedFrames = false, extra = [] }) {
      const w = new Proc(
        `worker-${id}`,
        binary('retrofarm-worker'),
        [
          '--id', id,
          '--zone', zone,
          '--coordinator', cluster.quic,
          '--pki-dir', pki,
          '--http-listen', '127.0.0.1:0',
          '--metrics-listen', '127.0.0.1:0',
          '--rtc-listen', '127.0.0.1:0',
          '--games-dir', gamesDir,
          '--skip-repeated-frames', String(skipRepeatedFrames),
          // The workers of a cluster share one save store, as a farm's share a bucket.
          '--saves', path.join(dir, 'saves'),
          ...extra,
        ],
        dir,
      );
      cluster.workers.set(id, w);
      await w.waitLog('registered with the coordinator');
      return w;
    },
    /** Kills the coordinator and starts it again on the same addresses (same PKI). */
    async restartCoordinator({ downMs = 0 } = {}) {
      await cluster.coordinator.kill();
      await sleep(downMs);
      restarts += 1;
      cluster.coordinator = new Proc(`coordinator-${restarts + 1}`, binary('retrofarm-coordinator'), coordinatorArgv, dir);
      await cluster.coordinator.waitLog('coordinator listening');
    },
    async stop() {
      await Promise.all([...cluster.workers.values()].map((w) => w.kill('SIGINT')));
      await cluster.coordinator.kill();
      if (!process.env.RETROFARM_KEEP_LOGS) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await coordinator.waitLog('coordinator listening');
    await Promise.all(workers.map((w) => cluster.startWorker(w)));
  } catch (err) {
    printDiagnostics(`cluster start failed: ${err.message}`);
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** A fresh folder for a test's logs and files, removed by `stop` unless RETROFARM_KEEP_LOGS. */
export function testDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'retrofarm-web-'));
}

/**
 * A self-signed certificate for 127.0.0.1 and localhost in `dir` (openssl): {cert, key}, the
 * paths of the PEM files. Browsers must be told to accept it (`--ignore-certificate-errors`).
 */
export function selfSignedCert(dir) {
  const cert = path.join(dir, 'site.pem');
  const key = path.join(dir, 'site.key');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'pipe' });
  return { cert, key };
}

/**
 * A real TURN server (Debian's coturn) on a free loopback port that checks time-limited
 * credentials against `secret` (`use-auth-secret`), relaying from 127.0.0.1 (loopback peers
 * allowed: the workers listen there). Returns {url, secret, proc, stop}, or {skipReason} when
 * coturn is not installed.
 */
export async function startTurnServer(dir, { secret = 'retrofarm-turn-test-secret' } = {}) {
  if (!fs.existsSync(TURNSERVER)) return { skipReason: `${TURNSERVER} is missing: apt-get install coturn (scripts/setup.sh)` };
  const port = await freeUdpPort();
  const proc = new Proc('turnserver', TURNSERVER, [
    '-n', // no configuration file: only these options
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=retrofarm.test',
    '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
    '--min-port=49152', '--max-port=65535',
    '--allow-loopback-peers', '--no-tls', '--no-dtls', '--no-cli', '--fingerprint',
    '--log-file=stdout', '--simple-log', '--verbose',
    `--pidfile=${path.join(dir, 'turnserver.pid')}`, `--db=${path.join(dir, 'turndb')}`,
  ], dir);
  // Ready once it accepts TCP on its port (it listens on UDP and TCP alike).
  const end = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (up) break;
    if (proc.exit || Date.now() > end) {
      await proc.kill();
      throw new Error(`turnserver did not listen on 127.0.0.1:${port}:\n${proc.output}`);
    }
    await sleep(50);
  }
  return { url: `turn:127.0.0.1:${port}`, secret, proc, stop: () => proc.kill() };
}

// ---- browser ---------------------------------------------------------------------------

/**
 * Launches Chromium. Playwright gives every launch a fresh temporary --user-data-dir of its own
 * (it refuses one in `args`), so each test file starts from a clean profile.
 */
export function launchBrowser({ args = [] } = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...args] });
}

/**
 * Opens `url` in a new context of `browser`. Camera/microphone are granted BEFORE the page loads:
 * without them Chromium hides its host candidates behind mDNS names the worker cannot resolve.
 */
export async function openPage(browser, url, { name = 'page', viewport = { width: 900, height: 1100 }, initScript = null, device = {} } = {}) {
  // `device`: more of Playwright's context options (e.g. `hasTouch` for a phone).
  const context = await browser.newContext({ viewport, ...device });
  await context.grantPermissions(['camera', 'microphone'], { origin: new URL(url).origin });
  // Runs in the page before its own scripts (e.g. to keep hold of its RTCPeerConnections).
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  const entry = {
    console: [],
    describe: () => `----- ${name} (${page.url()}) console:\n${entry.console.join('\n')}`,
  };
  page.on('console', (m) => entry.console.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => entry.console.push(`[pageerror] ${e.message}`));
  page.on('requestfailed', (r) => entry.console.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
  diagnostics.add(entry);
  context.on('close', () => diagnostics.delete(entry));
  await page.goto(url);
  return { context, page };
}

/** window.retrofarm.state of a page. */
export function pageState(page) {
  return page.evaluate(() => JSON.parse(JSON.stringify(window.retrofarm?.state ?? null)));
}

/**
 * Waits until `predicate(state)` (a function source run in the page against
 * window.retrofarm.state) holds; the failure message includes the last state.
 */
export async function waitForState(page, predicate, { timeout = 15_000, what = String(predicate) } = {}) {
  try {
    await page.waitForFunction(
      (src) => {
        const s = window.retrofarm?.state;
        return !!s && new Function('s', `return (${src})(s)`)(s);
      },
      String(predicate),
      { timeout, polling: 50 },
    );
  } catch (err) {
    const last = await pageState(page).catch(() => null);
    throw new Error(`page state never satisfied ${what} within ${timeout} ms; last state: ${JSON.stringify(last)}`, {
      cause: err,
    });
  }
  return pageState(page);
}

// ---- failures --------------------------------------------------------------------------

/** Latest files worth keeping if the test fails (e.g. screenshots), by file name. */
const artifacts = new Map();
export const ARTIFACT_DIR = path.join(WEB_ROOT, 'test-output');

/**
 * Keeps `data` to be written to web/test-output/`name` if the running test fails (always, when
 * RETROFARM_ARTIFACTS is set).
 */
export function keepArtifact(name, data) {
  artifacts.set(name, data);
  if (process.env.RETROFARM_ARTIFACTS) {
    fs.mkdirSync(ARTIFACT_DIR, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACT_DIR, name), data);
  }
}

export function printDiagnostics(title) {
  const parts = [`===== ${title}`];
  for (const d of diagnostics) parts.push(d.describe());
  if (artifacts.size > 0) {
    fs.mkdirSync(ARTIFACT_DIR, { recursive: true });
    for (const [name, data] of artifacts) {
      const file = path.join(ARTIFACT_DIR, name);
      fs.writeFileSync(file, data);
      parts.push(`----- kept ${file}`);
    }
  }
  console.error(parts.join('\n'));
}

/** A test that prints every log and console it can find when it fails. */
export function scenario(name, options, fn) {
  if (typeof options === 'function') [options, fn] = [{}, options];
  return test(name, { timeout: 60_000, ...options }, async (t) => {
    artifacts.clear();
    try {
      await fn(t);
    } catch (err) {
      if (!options.todo) printDiagnostics(`FAILED: ${name}`);
      throw err;
    }
  });
}

export { sleep };
