// (d) Media: the stream plays (H264 256x240 video, Opus audio) and the keyboard moves the game's
// blocks: player 1 (white) from the first page, player 2 (red) from a share-link page on port 2.
// Needs a worker that streams; RETROFARM_SKIP_MEDIA=1 skips it on a worker that does not yet.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { GAME, keepArtifact, launchBrowser, openPage, scenario, sleep, startCluster, waitForState } from './harness.mjs';
import { blockPosition, decodePng, isRed, isWhite, videoFrame } from './pixels.mjs';

const MEDIA_DEADLINE_MS = 5000;
/** How long a direction is held: ~42 frames, 84 px, which keeps the blocks from overlapping. */
const HOLD_MS = 700;
// Block centres at power-on, in the 256×240 coordinates of games/README.md.
const START = { p1: { x: 71.5, y: 119.5 }, p2: { x: 183.5, y: 119.5 } };
/** The stream's frame size (set once the video plays): 256×240, or 256×224 with overscan cropped. */
let frame = { width: 256, height: 240 };

let cluster;
let browser;
const players = { p1: null, p2: null };

before(async () => {
  [cluster, browser] = await Promise.all([startCluster({ workers: [{ id: 'w1', zone: 'eu' }] }), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

function videoInfo(page) {
  return page.evaluate(() => {
    const v = document.getElementById('video');
    return { width: v.videoWidth, height: v.videoHeight, paused: v.paused, readyState: v.readyState, time: v.currentTime };
  });
}

/** Polls the page's stats until `frames` are decoded and audio arrives, or fails clearly. */
async function waitForMedia(page, { frames, startedAt, who }) {
  const deadline = startedAt + MEDIA_DEADLINE_MS;
  let stats = null;
  let video = null;
  for (;;) {
    stats = await page.evaluate(() => window.retrofarm.pollStats());
    video = await videoInfo(page);
    if (stats.framesDecoded >= frames && stats.audioPackets > 0 && video.width > 0 && !video.paused) break;
    const s = await page.evaluate(() => window.retrofarm.state);
    if (s.error) assert.fail(`${who}: the page shows error ${s.error} (${s.errorMessage}) instead of the stream`);
    if (Date.now() > deadline) {
      assert.fail(
        `${who}: no playing stream within ${MEDIA_DEADLINE_MS} ms of starting (wanted ≥ ${frames} frames decoded ` +
          `and audio packets). Does the worker send video and audio after the peer connects yet? ` +
          `stats=${JSON.stringify(stats)} video=${JSON.stringify(video)} rtc=${s.rtc} input=${s.input}`,
      );
    }
    await sleep(150);
  }
  return { stats, video };
}

/** Both blocks' centres in README coordinates, from a screenshot of the video element. */
async function blocks(page, who = 'player') {
  const png = await page.locator('#video').screenshot();
  keepArtifact(`play-${who.replace(/\W+/g, '-')}.png`, png);
  const img = decodePng(png);
  // Stretched over the element once the page knows the core's picture shape (object-fit: fill).
  frame.fill = (await videoFrame(page)).fill;
  // A cropped picture (overscan) loses as many pixels on each side.
  const ox = (256 - frame.width) / 2;
  const oy = (240 - frame.height) / 2;
  const at = (match) => {
    const p = blockPosition(img, match, frame);
    return p && { x: p.x + ox, y: p.y + oy, count: p.count };
  };
  return { p1: at(isWhite), p2: at(isRed), img };
}

/** Screenshots until the blocks stop moving (the stream lags the input a little). */
async function settledBlocks(page, timeoutMs = 2000) {
  const who = page === players.p2 ? 'player 2' : 'player 1';
  let prev = await blocks(page, who);
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    await sleep(150);
    const cur = await blocks(page, who);
    const same = (a, b) => a && b && Math.abs(a.x - b.x) < 1 && Math.abs(a.y - b.y) < 1;
    if (same(prev.p1, cur.p1) && same(prev.p2, cur.p2)) return cur;
    prev = cur;
  }
  return prev;
}

function near(pos, want, tol, what) {
  assert.ok(pos, `${what}: block not found in the picture`);
  assert.ok(
    Math.abs(pos.x - want.x) <= tol && Math.abs(pos.y - want.y) <= tol,
    `${what}: block at (${pos.x.toFixed(1)}, ${pos.y.toFixed(1)}), expected about (${want.x}, ${want.y})`,
  );
}

async function hideStats(page) {
  const toggle = page.getByRole('button', { name: 'Stats' });
  assert.equal(await toggle.getAttribute('aria-pressed'), 'true', 'stats are shown by default');
  await toggle.click();
  await page.locator('#stats').waitFor({ state: 'hidden' });
}

async function hold(page, key, ms) {
  await page.focus('#screen');
  await page.keyboard.down(key);
  await sleep(ms);
  await page.keyboard.up(key);
}

scenario('the stream plays and both players move their blocks', { timeout: 90_000 }, async (t) => {
  if (process.env.RETROFARM_SKIP_MEDIA) return t.skip('RETROFARM_SKIP_MEDIA is set');
  const one = await openPage(browser, `${cluster.url}/`, { name: 'player 1' });
  const two = { context: null };
  try {
    const p1 = one.page;
    players.p1 = p1;
    // Time to first frame: from the click to the first frame the video element presents.
    await p1.evaluate(() => {
      window.firstFrameAt = new Promise((resolve) =>
        document.querySelector('video').requestVideoFrameCallback(() => resolve(performance.now())));
    });
    const clickedAt = await p1.evaluate(() => performance.now());
    await p1.getByRole('button', { name: new RegExp(GAME) }).click();
    const startedAt = Date.now();
    await waitForState(p1, (s) => s.phase === 'playing', { what: 'game_started' });

    // Within 5 s: ≥ 100 frames decoded at 256 wide in H264, audio packets arriving.
    const { stats, video } = await waitForMedia(p1, { frames: 100, startedAt, who: 'player 1' });
    t.diagnostic(`player 1: ${stats.framesDecoded} frames, ${stats.audioPackets} audio packets ${Date.now() - startedAt} ms after the click`);
    const firstFrame = (await p1.evaluate(() => window.firstFrameAt)) - clickedAt;
    t.diagnostic(`time to first frame: ${firstFrame.toFixed(0)} ms from the click`);
    assert.ok(firstFrame < 5000, `first frame ${firstFrame.toFixed(0)} ms after the click`);
    assert.equal(stats.codec, 'video/H264', `codec: ${stats.codec}`);
    assert.equal(video.width, 256, `videoWidth ${video.width}`);
    assert.ok([224, 240].includes(video.height), `videoHeight ${video.height} (240, or 224 with overscan cropped)`);
    frame = { width: video.width, height: video.height };
    assert.ok(stats.audioPackets > 0);

    // The stats overlay sits on the picture (its text is white too): hide it with its toggle.
    await hideStats(p1);

    // Player 1 holds Right for 0.7 s: the white block moves right (~84 px at 2 px a frame), not
    // down, and stops short of the red block (player 1 is drawn in front and would hide part of it).
    const start = await settledBlocks(p1);
    near(start.p1, START.p1, 3, 'player 1 at start');
    near(start.p2, START.p2, 3, 'player 2 at start');
    await hold(p1, 'ArrowRight', HOLD_MS);
    const moved = await settledBlocks(p1);
    assert.ok(moved.p1, 'player 1 block visible after moving');
    const dx = moved.p1.x - start.p1.x;
    const fmt = (p) => `(${p.x.toFixed(1)}, ${p.y.toFixed(1)})`;
    t.diagnostic(`player 1 ${fmt(start.p1)} → ${fmt(moved.p1)} after ArrowRight for ${HOLD_MS} ms`);
    assert.ok(dx >= 40 && dx <= 100, `player 1 moved ${dx.toFixed(1)} px holding ArrowRight for ${HOLD_MS} ms (expected ~84)`);
    assert.ok(Math.abs(moved.p1.y - start.p1.y) < 3, 'player 1 did not move vertically');
    near(moved.p2, START.p2, 3, 'player 2 unmoved by player 1');

    // A second player opens the share link: port 2 by default, same picture, moves the red block.
    const link = await p1.locator('#share-link').inputValue();
    Object.assign(two, await openPage(browser, link, { name: 'player 2' }));
    const p2 = two.page;
    players.p2 = p2;
    await waitForState(p2, (s) => s.phase === 'choosing' && !!s.room, { what: 'share-link init' });
    assert.equal(await p2.locator('#port').inputValue(), '2', 'a share link defaults to port 2');
    await p2.getByRole('button', { name: 'Join the game' }).click();
    const joinedAt = Date.now();
    const s2 = await waitForState(p2, (s) => s.phase === 'playing', { what: 'joined' });
    assert.equal(s2.port, 2);
    await waitForMedia(p2, { frames: 30, startedAt: joinedAt, who: 'player 2' });
    await hideStats(p2);
    const seen = await settledBlocks(p2);
    near(seen.p1, moved.p1, 3, 'player 2 sees player 1 where it went');
    near(seen.p2, START.p2, 3, 'player 2 at start, seen by player 2');

    await hold(p2, 'ArrowLeft', HOLD_MS);
    const after2 = await settledBlocks(p2);
    assert.ok(after2.p2, 'player 2 block visible after moving');
    const dx2 = after2.p2.x - seen.p2.x;
    t.diagnostic(`player 2 ${fmt(seen.p2)} → ${fmt(after2.p2)} after ArrowLeft for ${HOLD_MS} ms`);
    assert.ok(dx2 <= -40 && dx2 >= -100, `player 2 moved ${dx2.toFixed(1)} px holding ArrowLeft for ${HOLD_MS} ms (expected ~-84)`);
    assert.ok(Math.abs(after2.p2.y - seen.p2.y) < 3, 'player 2 did not move vertically');
    near(after2.p1, moved.p1, 3, 'player 1 unmoved by player 2');
    // Player 1's page shows the same room.
    const p1view = await settledBlocks(p1);
    near(p1view.p2, after2.p2, 3, 'player 1 sees player 2 move');
  } finally {
    await two.context?.close();
    await one.context.close();
  }
});

scenario('?codec=vp8 streams VP8, and an H264 viewer in the same room plays too', async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/?codec=vp8`, { name: 'vp8 player' });
  let other;
  try {
    await page.getByRole('button', { name: new RegExp(GAME) }).click();
    const startedAt = Date.now();
    const { stats } = await waitForMedia(page, { frames: 100, startedAt, who: 'vp8 player' });
    assert.equal(stats.codec, 'video/VP8');

    // The share link without ?codec answers with H264: the room now encodes both.
    const link = await page.locator('#share-link').inputValue();
    other = await openPage(browser, link, { name: 'h264 viewer' });
    await waitForState(other.page, (s) => s.phase === 'choosing' && !!s.room, { what: 'share-link init' });
    await other.page.getByRole('button', { name: 'Join the game' }).click();
    const joinedAt = Date.now();
    const h264 = await waitForMedia(other.page, { frames: 60, startedAt: joinedAt, who: 'h264 viewer' });
    assert.equal(h264.stats.codec, 'video/H264');
    // The VP8 viewer keeps decoding while the H264 one plays.
    const before = (await page.evaluate(() => window.retrofarm.pollStats())).framesDecoded;
    await page.waitForTimeout(1000);
    const after = (await page.evaluate(() => window.retrofarm.pollStats())).framesDecoded;
    assert.ok(after - before >= 40, `VP8 viewer decoded ${after - before} frames in 1 s beside an H264 viewer`);
  } finally {
    await other?.context.close();
    await context.close();
  }
});

scenario('the page reports what it decoded, and the worker exports it', async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'reporting player' });
  try {
    const metricsAddr = / metrics=(\S+)/.exec(cluster.workers.get('w1').output)?.[1];
    assert.ok(metricsAddr, 'the worker logs its metrics address');
    const read = async () => {
      const text = await (await fetch(`http://${metricsAddr}/metrics`)).text();
      const value = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      return { frames: value('retrofarm_viewer_frames_decoded_total'), secs: value('retrofarm_viewer_report_seconds_total') };
    };
    const before = await read();
    await page.getByRole('button', { name: new RegExp(GAME) }).click();
    await waitForMedia(page, { frames: 30, startedAt: Date.now(), who: 'reporting player' });
    // The first report goes out 5 s after the first stats sample.
    await page.waitForTimeout(7000);
    const after = await read();
    const secs = after.secs - before.secs;
    const fps = (after.frames - before.frames) / secs;
    assert.ok(secs >= 4, `the worker counted ${secs} s of reports`);
    // The page decodes every frame the homebrew game sends (about 60 fps, repeats included
    // in this cluster); a floor, not a timing assertion.
    assert.ok(fps >= 20, `reported ${fps.toFixed(1)} fps`);
  } finally {
    await context.close();
  }
});
