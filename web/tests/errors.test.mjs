// (b) Errors: a malformed message gets `malformed` and the connection stays usable; a share link
// to a room that does not exist shows a clear message.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { GAME, launchBrowser, openPage, scenario, startCluster, waitForState } from './harness.mjs';

let cluster;
let browser;

before(async () => {
  [cluster, browser] = await Promise.all([startCluster({ workers: [{ id: 'w1', zone: 'eu' }] }), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

async function errorShown(page, code) {
  const box = page.locator(`#error[data-code="${code}"]`);
  await box.waitFor({ state: 'visible', timeout: 10_000 });
  return (await box.textContent()).trim();
}

scenario('a malformed message is answered with `malformed` and the session goes on', async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/`);
  try {
    await waitForState(page, (s) => s.phase === 'choosing', { what: 'init' });

    assert.equal(await page.evaluate(() => window.retrofarm.sendRaw('{not json')), true);
    const text = await errorShown(page, 'malformed');
    assert.match(text, /could not understand/i);
    let s = await waitForState(page, (s) => s.errors.includes('malformed'));
    assert.equal(s.phase, 'choosing', 'a protocol error does not end the session');

    await page.evaluate(() => window.retrofarm.sendRaw('{"t":"self_destruct"}'));
    await errorShown(page, 'unknown_type');

    // The same connection still works: a valid start_game starts the game.
    await page.getByRole('button', { name: new RegExp(GAME) }).click();
    s = await waitForState(page, (s) => s.phase === 'playing' && !!s.room, { what: 'game_started after errors' });
    assert.equal(s.error, null, 'starting a game clears the error');
    assert.ok(await page.locator('#error').isHidden());
  } finally {
    await context.close();
  }
});

scenario('a share link to an unknown room says so, then offers a new game', async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/?id=doesnotexist`);
  try {
    const text = await errorShown(page, 'unknown_room');
    assert.match(text, /room does not exist/i);
    // The coordinator follows with the latency check: the page lands in the normal lobby.
    const s = await waitForState(page, (s) => s.phase === 'choosing', { what: 'lobby after unknown_room' });
    assert.equal(s.room, null);
    assert.equal(s.port, 1);
    await page.getByRole('button', { name: new RegExp(GAME) }).waitFor();
    assert.ok(await page.locator('#error[data-code="unknown_room"]').isVisible(), 'the message stays until acted on');
  } finally {
    await context.close();
  }
});
