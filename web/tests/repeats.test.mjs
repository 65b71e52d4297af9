// (f) The worker's default: frames identical to the one before are not encoded again. Chromium
// plays the variable-rate stream: a still picture keeps arriving (ten frames a second), motion
// arrives at the full rate, and the picture follows the keys.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { GAME, launchBrowser, openPage, scenario, sleep, startCluster, waitForState } from './harness.mjs';
import { blockPosition, decodePng, isWhite, videoFrame } from './pixels.mjs';

let cluster;
let browser;

before(async () => {
  [cluster, browser] = await Promise.all([
    startCluster({ workers: [{ id: 'w1', zone: 'eu', skipRepeatedFrames: true }] }),
    launchBrowser(),
  ]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

const decoded = (page) => page.evaluate(() => window.retrofarm.pollStats()).then((s) => s.framesDecoded);

async function whiteBlockX(page) {
  const img = decodePng(await page.locator('#video').screenshot());
  const frame = await videoFrame(page);
  return blockPosition(img, isWhite, frame)?.x;
}

scenario('a still picture keeps arriving at 10 fps, motion at the full rate', { timeout: 60_000 }, async (t) => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'repeats' });
  try {
    await page.getByRole('button', { name: new RegExp(GAME) }).click();
    await waitForState(page, (s) => s.phase === 'playing', { what: 'game_started' });
    const deadline = Date.now() + 10_000;
    while ((await decoded(page)) < 10) {
      assert.ok(Date.now() < deadline, 'no picture decoded within 10 s');
      await sleep(150);
    }
    await page.getByRole('button', { name: 'Stats' }).click();

    // Nobody presses anything: the picture is still, and about every sixth frame is sent.
    let before = await decoded(page);
    await sleep(2000);
    const still = (await decoded(page)) - before;
    t.diagnostic(`still picture: ${still} frames decoded in 2 s`);
    assert.ok(still >= 12 && still <= 30, `a still picture: ${still} frames in 2 s (20 expected)`);
    const x0 = await whiteBlockX(page);
    assert.ok(x0 !== undefined, 'player 1 visible in the still picture');

    // Holding Right: every frame differs and every frame is sent.
    await page.focus('#screen');
    before = await decoded(page);
    await page.keyboard.down('ArrowRight');
    await sleep(700);
    await page.keyboard.up('ArrowRight');
    const moving = (await decoded(page)) - before;
    t.diagnostic(`moving picture: ${moving} frames decoded in 0.7 s`);
    assert.ok(moving >= 30, `a moving picture: ${moving} frames in 0.7 s (about 42 expected)`);
    await sleep(500);
    const x1 = await whiteBlockX(page);
    assert.ok(x1 - x0 >= 40, `player 1 moved from ${x0} to ${x1} holding ArrowRight`);
  } finally {
    await context.close();
  }
});
