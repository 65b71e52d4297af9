// (b) Errors: a malformed message gets `malformed` and the connection stays usable; a share link
// to a room that does not exist (not running, no autosave) shows a clear message on joining.

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

scenario('a share link to an unknown room says so on joining, then offers a new game', async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/?id=doesnotexist`);
  try {
    // A room that is not running may resume from its autosave: the page only learns that it has
    // none when the player joins.
    let s = await waitForState(page, (s) => s.phase === 'choosing' && s.room === 'doesnotexist', { what: 'init' });
    assert.equal(s.port, 2, 'a share link defaults to port 2');
    assert.equal(s.error, null);
    assert.equal((await page.locator('#status').textContent()).trim(), 'Ready to join (or resume) room doesnotexist.');
    await page.getByRole('button', { name: 'Join the game' }).click();

    const text = await errorShown(page, 'unknown_room');
    assert.match(text, /room does not exist/i);
    assert.match(text, /doesnotexist does not exist .*no save to resume from/i, 'the server says why');
    s = await waitForState(page, (s) => s.phase === 'choosing' && s.room === null, { what: 'lobby after unknown_room' });
    assert.equal(s.port, 1);
    assert.equal(await page.locator('#port').inputValue(), '1');
    assert.equal((await page.locator('#status').textContent()).trim(), 'Ready: choose a game.');
    const game = page.getByRole('button', { name: new RegExp(GAME) });
    await game.waitFor();
    assert.ok(await page.getByRole('button', { name: 'Join the game' }).isHidden());
    assert.ok(await page.locator('#error[data-code="unknown_room"]').isVisible(), 'the message stays until acted on');

    // The session goes on: a new game starts from this lobby.
    await game.click();
    s = await waitForState(page, (s) => s.phase === 'playing' && !!s.room, { what: 'a new game after unknown_room' });
    assert.notEqual(s.room, 'doesnotexist');
    assert.equal(s.port, 1);
  } finally {
    await context.close();
  }
});
