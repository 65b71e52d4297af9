// (a) The page lists the worker's games, starts one, and the WebRTC connection and the `input`
// data channel come up; the share link is shown.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { GAME, launchBrowser, openPage, scenario, sleep, startCluster, waitForState } from './harness.mjs';

let cluster;
let browser;

before(async () => {
  [cluster, browser] = await Promise.all([startCluster({ workers: [{ id: 'w1', zone: 'eu' }] }), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

scenario('lists the games, starts one, connects WebRTC and opens the input channel', async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/?zone=eu`);
  try {
    const button = page.getByRole('button', { name: new RegExp(GAME) });
    await button.waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#worker-id').textContent(), 'w1');
    assert.equal(await page.locator('#worker-zone').textContent(), 'eu');
    assert.equal(await page.locator('#port').inputValue(), '1', 'a fresh page plays on port 1');
    // The key map is on the page.
    assert.ok((await page.locator('#keymap tbody tr').count()) >= 12, 'the key map lists every key');

    await button.click();
    let s = await waitForState(page, (s) => s.phase === 'playing' && !!s.room, { what: 'game_started' });
    assert.equal(s.port, 1);
    assert.equal(s.game, GAME);

    s = await waitForState(page, (s) => s.rtc === 'connected' && s.input === 'open', {
      what: 'RTCPeerConnection connected and the input channel open',
    });

    assert.ok(s.videoCodecs.includes('H264'), `the answer accepts H264: ${s.videoCodecs}`);

    // The share link points at this room on this origin.
    const link = page.locator('#share-link');
    await link.waitFor({ state: 'visible' });
    assert.equal(await link.inputValue(), `${cluster.url}/?id=${s.room}`);
    assert.ok(await page.getByRole('button', { name: 'Copy link' }).isVisible());

    // The pad state goes out on the channel, again every 100 ms while nothing changes.
    const before = await page.evaluate(() => window.retrofarm.inputSent());
    await sleep(350);
    const later = await page.evaluate(() => window.retrofarm.inputSent());
    assert.ok(later - before >= 2, `input resent while idle (${before} → ${later})`);

    // Stats are exposed for tests.
    const stats = await page.evaluate(() => window.retrofarm.pollStats());
    assert.equal(typeof stats.framesDecoded, 'number');

    // Quit goes back to the game list, and the same session can start again.
    await page.getByRole('button', { name: 'Quit' }).click();
    s = await waitForState(page, (s) => s.phase === 'choosing' && s.rtc === 'none', { what: 'back in the lobby' });
    assert.equal(s.room, null);
    await button.click();
    s = await waitForState(page, (s) => s.rtc === 'connected' && s.input === 'open', { what: 'connected again' });
    assert.equal(s.error, null, `no error on the second start: ${s.errors}`);
  } finally {
    await context.close();
  }
});

scenario('?codec=vp8 answers with VP8 (and rtx) only', async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/?codec=vp8`);
  try {
    await page.getByRole('button', { name: new RegExp(GAME) }).click();
    const s = await waitForState(page, (s) => s.videoCodecs.length > 0, { what: 'an answer was sent' });
    assert.ok(s.videoCodecs.includes('VP8'), String(s.videoCodecs));
    assert.deepEqual(s.videoCodecs.filter((c) => c !== 'VP8' && c !== 'rtx'), [], String(s.videoCodecs));
  } finally {
    await context.close();
  }
});
