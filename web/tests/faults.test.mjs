// Worker faults seen from the page (issue 17): the coordinator restarts while a player plays.
// The stream comes straight from the worker, so the page plays on without an error, reconnects
// its signaling by itself, and can quit and start another game afterwards.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { GAME, launchBrowser, openPage, scenario, sleep, startCluster, waitForState } from './harness.mjs';

let cluster;
let browser;

before(async () => {
  [cluster, browser] = await Promise.all([startCluster(), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

/** Frames decoded so far (polls until the stream's first report is in). */
async function decoded(page) {
  for (let i = 0; i < 100; i++) {
    const n = (await page.evaluate(() => window.retrofarm.pollStats())).framesDecoded;
    if (n > 0) return n;
    await sleep(100);
  }
  assert.fail('no frame decoded');
}

scenario('a coordinator restart mid-game: the page plays on and reconnects by itself', { timeout: 90_000 }, async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'player' });
  try {
    await page.getByRole('button', { name: new RegExp(GAME) }).click();
    await waitForState(page, (s) => s.phase === 'playing' && s.rtc === 'connected', { what: 'a connected game' });
    await sleep(1000);

    // 1.5 s without a coordinator, then a new one on the same address: the page's first try
    // (after 1 s) finds none, its second (3 s) finds the new one before the worker has noticed
    // its link is gone (~5 s) and registered there: the lobby has no server for a while.
    const before = await decoded(page);
    await cluster.restartCoordinator({ downMs: 1500 });
    await waitForState(page, (s) => s.signaling === 'open' && s.phase === 'playing', {
      timeout: 20_000,
      what: 'signaling reconnected while playing',
    });
    await sleep(1000);
    const after = await decoded(page);
    const s = await page.evaluate(() => window.retrofarm.state);
    assert.equal(s.error, null, `the page shows an error: ${s.error} (${s.errorMessage})`);
    assert.equal(s.phase, 'playing');
    assert.equal(s.rtc, 'connected');
    // About 3.5 s at 60 fps; a floor, not a timing assertion.
    assert.ok(after - before >= 100, `only ${after - before} frames decoded across the restart`);

    // The page quits the game and starts a new one through the new coordinator.
    await page.getByRole('button', { name: 'Quit' }).click();
    await waitForState(page, (st) => st.phase === 'choosing', { what: 'back in the lobby' });
    await page.getByRole('button', { name: new RegExp(GAME) }).click();
    await waitForState(page, (st) => st.phase === 'playing' && st.rtc === 'connected', {
      what: 'a second game after the restart',
    });
    const s2 = await page.evaluate(() => window.retrofarm.state);
    assert.equal(s2.error, null, `the page shows an error: ${s2.error} (${s2.errorMessage})`);
  } finally {
    await context.close();
  }
});
