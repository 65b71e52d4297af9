// (g) Game commands on the `control` data channel, from the page's Game panel: save a slot
// (F2), move on, load it (the Load button) and see the block back where it was saved; Reset
// (after its confirmation step) puts the block back at its start; loading an empty slot shows
// the worker's message and the game goes on; the player's saves outlive a reload; a reload
// mid-game comes straight back to the same room and port with the game as it was.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { GAME, keepArtifact, launchBrowser, openPage, pageState, scenario, sleep, startCluster, waitForState } from './harness.mjs';
import { blockPosition, decodePng, isRed, isWhite, videoFrame } from './pixels.mjs';

/** ~24 frames of Right: 48 px, which keeps the white block clear of the red one (x 176..191). */
const HOLD_MS = 400;
/** Player 1's block centre at power-on, in the 256×240 coordinates of games/README.md. */
const START = { x: 71.5, y: 119.5 };

let cluster;
let browser;

before(async () => {
  [cluster, browser] = await Promise.all([startCluster({ workers: [{ id: 'w1', zone: 'eu' }] }), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

/** Starts the game and waits for a playing stream and an open control channel with the slots known. */
async function play(page) {
  await page.getByRole('button', { name: new RegExp(GAME) }).click();
  await watching(page);
}

/** Waits for a playing stream and an open control channel with the slots known. */
async function watching(page) {
  await waitForState(page, (s) => s.phase === 'playing', { what: 'game_started' });
  await waitForState(page, (s) => s.control === 'open' && Array.isArray(s.slots), { what: 'control channel and slots' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const stats = await page.evaluate(() => window.retrofarm.pollStats());
    const video = await page.evaluate(() => document.getElementById('video').videoWidth);
    if (stats.framesDecoded >= 30 && video > 0) break;
    assert.ok(Date.now() < deadline, `no video within 10 s: ${JSON.stringify(stats)}`);
    await sleep(100);
  }
  // The stats overlay sits on the picture in white text: hide it.
  await page.getByRole('button', { name: 'Stats' }).click();
  await page.locator('#stats').waitFor({ state: 'hidden' });
}

/** Player 1's block centre in README coordinates (the stream may crop 8 px of overscan). */
async function block(page, name, match = isWhite) {
  const png = await page.locator('#video').screenshot();
  keepArtifact(`saves-${name}.png`, png);
  const frame = await videoFrame(page);
  const p = blockPosition(decodePng(png), match, frame);
  return p && { x: p.x + (256 - frame.width) / 2, y: p.y + (240 - frame.height) / 2 };
}

/** Screenshots until the block stays put (the stream lags the input a little). */
async function settled(page, name, timeoutMs = 3000, match = isWhite) {
  let prev = await block(page, name, match);
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    await sleep(150);
    const cur = await block(page, name, match);
    if (prev && cur && Math.abs(prev.x - cur.x) < 1 && Math.abs(prev.y - cur.y) < 1) return cur;
    prev = cur;
  }
  assert.fail(`${name}: the block did not settle within ${timeoutMs} ms (last ${JSON.stringify(prev)})`);
}

function near(pos, want, tol, what) {
  assert.ok(pos, `${what}: block not found in the picture`);
  assert.ok(
    Math.abs(pos.x - want.x) <= tol && Math.abs(pos.y - want.y) <= tol,
    `${what}: block at (${pos.x.toFixed(1)}, ${pos.y.toFixed(1)}), expected about (${want.x.toFixed(1)}, ${want.y.toFixed(1)})`,
  );
}

async function hold(page, key, ms) {
  await page.focus('#screen');
  await page.keyboard.down(key);
  await sleep(ms);
  await page.keyboard.up(key);
}

const replyCount = (page) => page.evaluate(() => window.retrofarm.state.gameReplies.length);

/** The first answer to a `command` after the first `from` answers of the page. */
async function replyTo(page, command, from, timeout = 15_000) {
  const find = ([n, c]) => window.retrofarm.state.gameReplies.slice(n).find((r) => r.command === c) ?? null;
  try {
    await page.waitForFunction(find, [from, command], { timeout, polling: 50 });
  } catch (err) {
    const s = await pageState(page).catch(() => null);
    throw new Error(`no answer to ${command} within ${timeout} ms; state: ${JSON.stringify(s)}`, { cause: err });
  }
  return page.evaluate(find, [from, command]);
}

const statusText = async (page) => (await page.locator('#status').textContent()).trim();

scenario('save to slot 1 with F2, move on, load slot 1: the block is back where it was saved', { timeout: 90_000 }, async (t) => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'saver' });
  try {
    await play(page);
    const s0 = await pageState(page);
    assert.match(s0.user, /^[A-Za-z0-9_-]{8,64}$/, 'the player id follows the protocol rule');
    assert.deepEqual(s0.slots, [], 'a new player has no saves');
    assert.equal(await page.locator('#slot option[value="1"]').textContent(), '1 · empty');
    const fmt = (p) => `(${p.x.toFixed(1)}, ${p.y.toFixed(1)})`;

    const start = await settled(page, 'start');
    near(start, START, 3, 'at power-on');
    await hold(page, 'ArrowRight', HOLD_MS);
    const saved = await settled(page, 'at-save');
    assert.ok(saved.x - start.x >= 25, `moved ${(saved.x - start.x).toFixed(1)} px right before saving`);

    // F2 saves to the selected slot (1) and the browser does nothing else with it.
    await page.evaluate(() => {
      window.addEventListener('keydown', (e) => e.code === 'F2' && (window.f2Prevented = e.defaultPrevented));
    });
    let from = await replyCount(page);
    await page.focus('#screen');
    await page.keyboard.press('F2');
    const savedReply = await replyTo(page, 'save', from);
    assert.deepEqual({ t: savedReply.t, p: savedReply.p }, { t: 'saved', p: { slot: 1 } });
    assert.equal(await page.evaluate(() => window.f2Prevented), true, 'F2 default prevented');
    assert.equal(await statusText(page), 'Saved to slot 1');
    // The slot list is refreshed after the save.
    const s1 = await waitForState(page, (s) => s.slots?.some((x) => x.slot === 1), { what: 'slot 1 listed' });
    assert.deepEqual(s1.slots.map((x) => x.slot), [1]);
    assert.ok(Math.abs(s1.slots[0].saved_ms - Date.now()) < 60_000, `saved_ms ${s1.slots[0].saved_ms}`);
    assert.match(await page.locator('#slot option[value="1"]').textContent(), /^1 · saved /);

    await hold(page, 'ArrowRight', HOLD_MS);
    const further = await settled(page, 'further');
    t.diagnostic(`saved at ${fmt(saved)}, moved on to ${fmt(further)}`);
    assert.ok(further.x - saved.x >= 25, `moved ${(further.x - saved.x).toFixed(1)} px right after saving`);

    from = await replyCount(page);
    await page.getByRole('button', { name: 'Load', exact: true }).click();
    const loaded = await replyTo(page, 'load', from);
    assert.deepEqual({ t: loaded.t, p: loaded.p }, { t: 'loaded', p: { slot: 1 } });
    assert.equal(await statusText(page), 'Loaded slot 1');
    const back = await settled(page, 'after-load');
    t.diagnostic(`after loading slot 1: ${fmt(back)}`);
    near(back, saved, 3, 'after loading slot 1');
    const s2 = await pageState(page);
    assert.equal(s2.gameReply.t, 'loaded');
    assert.equal(s2.error, null);

    // The mouse click gave the keyboard back to the game: the arrows move the block at once.
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'screen');
  } finally {
    await context.close();
  }
});

scenario('Reset asks first, then puts the block back at its start', { timeout: 60_000 }, async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'resetter' });
  try {
    await play(page);
    await hold(page, 'ArrowRight', HOLD_MS);
    await hold(page, 'ArrowDown', HOLD_MS / 2);
    const moved = await settled(page, 'before-reset');
    assert.ok(moved.x - START.x >= 25 && moved.y - START.y >= 10, `moved to (${moved.x}, ${moved.y})`);

    // Reset opens a confirmation step; Cancel closes it and nothing is sent.
    const from = await replyCount(page);
    const reset = page.getByRole('button', { name: 'Reset', exact: true });
    await reset.click();
    assert.equal(await reset.getAttribute('aria-expanded'), 'true');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.locator('#reset-confirm').waitFor({ state: 'hidden' });
    await sleep(300);
    assert.equal(await replyCount(page), from, 'Cancel sends nothing');
    near(await settled(page, 'after-cancel'), moved, 1, 'after Cancel');

    await reset.click();
    await page.getByRole('button', { name: 'Yes, reset' }).click();
    const reply = await replyTo(page, 'reset', from);
    assert.deepEqual({ t: reply.t, p: reply.p }, { t: 'reset', p: undefined });
    assert.equal(await statusText(page), 'Game reset');
    await page.locator('#reset-confirm').waitFor({ state: 'hidden' });
    near(await settled(page, 'after-reset'), START, 3, 'after Reset');
  } finally {
    await context.close();
  }
});

scenario('loading an empty slot shows the worker\'s message; the game goes on and saves outlive a reload', { timeout: 90_000 }, async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'empty slot' });
  try {
    await play(page);
    await page.getByLabel('Slot').selectOption('4');
    let from = await replyCount(page);
    await page.getByRole('button', { name: 'Load', exact: true }).click();
    const failed = await replyTo(page, 'load', from);
    assert.equal(failed.t, 'failed');
    assert.equal(failed.p.command, 'load');
    assert.equal(failed.p.message, `slot 4 of ${GAME} is empty`);
    assert.equal(failed.local, undefined, 'the worker said so, not a timeout');
    const box = page.locator('#error[data-code="load_failed"]');
    await box.waitFor({ state: 'visible' });
    const text = await box.textContent();
    assert.match(text, /could not be loaded/);
    assert.ok(text.includes(`slot 4 of ${GAME} is empty`), `the worker's message is shown: ${text}`);
    assert.equal(await statusText(page), `Loading slot 4 failed: slot 4 of ${GAME} is empty`);
    let s = await pageState(page);
    assert.equal(s.phase, 'playing', 'the game goes on');
    assert.equal(s.control, 'open');

    // A save that works clears the message; the slot is listed.
    from = await replyCount(page);
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    assert.equal((await replyTo(page, 'save', from)).t, 'saved');
    await box.waitFor({ state: 'hidden' });
    s = await waitForState(page, (s) => s.slots?.some((x) => x.slot === 4), { what: 'slot 4 listed' });
    const user = s.user;

    // The same browser after a reload: the same player, whose slot 4 is still there.
    await page.reload();
    await watching(page);
    s = await pageState(page);
    assert.equal(s.user, user, 'the player id is kept in localStorage');
    assert.deepEqual(s.slots.map((x) => x.slot), [4]);
    assert.match(await page.locator('#slot option[value="4"]').textContent(), /^4 · saved /);
  } finally {
    await context.close();
  }
});

scenario('a reload mid-game comes straight back to the same room and port, the game as it was', { timeout: 90_000 }, async (t) => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'reloader' });
  try {
    await play(page);
    await hold(page, 'ArrowRight', HOLD_MS);
    const moved = await settled(page, 'before-reload');
    assert.ok(moved.x - START.x >= 25, `moved to (${moved.x}, ${moved.y})`);
    const before = await pageState(page);
    assert.match(page.url(), new RegExp(`[?&]id=${before.room}(&|$)`), 'the address holds the room');
    assert.match(page.url(), /[?&]port=1(&|$)/, 'and the port');

    await page.reload();
    await watching(page);
    const after = await pageState(page);
    assert.equal(after.room, before.room, 'the same room');
    assert.equal(after.port, before.port, 'the same port');
    const back = await settled(page, 'after-reload');
    t.diagnostic(`before the reload ${moved.x.toFixed(1)}, after ${back.x.toFixed(1)}`);
    near(back, moved, 3, 'the game as it was');

    // Quitting takes the room out of the address: a reload then starts in the lobby.
    await page.getByRole('button', { name: 'Quit' }).click();
    assert.doesNotMatch(page.url(), /[?&](id|port)=/);
  } finally {
    await context.close();
  }
});

scenario('a spectator watches without moving anything, then takes port 2 in game', { timeout: 90_000 }, async (t) => {
  const host = await openPage(browser, `${cluster.url}/`, { name: 'host' });
  let guest;
  try {
    await play(host.page);
    const room = (await pageState(host.page)).room;
    guest = await openPage(browser, `${cluster.url}/?id=${room}`, { name: 'spectator' });
    await waitForState(guest.page, (s) => s.phase === 'choosing', { what: 'invited lobby' });
    await guest.page.getByLabel('Controller port').selectOption('0');
    await guest.page.getByRole('button', { name: /join/i }).click();
    await watching(guest.page);
    const s = await pageState(guest.page);
    assert.equal(s.port, 0, 'watching');
    assert.match(await guest.page.locator('#now-playing').textContent(), /watching/);
    assert.ok(await guest.page.getByRole('button', { name: 'Load', exact: true }).isDisabled(), 'a spectator cannot load');
    assert.ok(await guest.page.getByRole('button', { name: 'Reset', exact: true }).isDisabled(), 'nor reset');

    // The spectator's keys move nothing.
    const white = await settled(guest.page, 'spectator-white');
    await hold(guest.page, 'ArrowRight', HOLD_MS);
    near(await settled(guest.page, 'spectator-white-after'), white, 1, "the spectator's Right");

    // Taking port 2 in game: now Left moves player 2's red block.
    const from = await replyCount(guest.page);
    await guest.page.getByLabel('Play as').selectOption('2');
    const reply = await replyTo(guest.page, 'port', from);
    assert.deepEqual({ t: reply.t, p: reply.p }, { t: 'port', p: { port: 2 } });
    assert.equal((await pageState(guest.page)).port, 2);
    assert.match(guest.page.url(), /[?&]port=2(&|$)/, 'a reload comes back on port 2');
    const red = await settled(guest.page, 'red-before', 3000, isRed);
    await hold(guest.page, 'ArrowLeft', HOLD_MS);
    const moved = await settled(guest.page, 'red-after', 3000, isRed);
    t.diagnostic(`player 2 from ${red.x.toFixed(1)} to ${moved.x.toFixed(1)}`);
    assert.ok(red.x - moved.x >= 25, `player 2 moved left: ${red.x} -> ${moved.x}`);

    // Port 1 is the host's: switching there is refused with the worker's reason.
    const before = await replyCount(guest.page);
    await guest.page.getByLabel('Play as').selectOption('1');
    const refused = await replyTo(guest.page, 'port', before);
    assert.equal(refused.t, 'failed');
    assert.match(refused.p.message, /player 1 is taken/);
    assert.equal((await pageState(guest.page)).port, 2, 'still player 2');
  } finally {
    await guest?.context.close();
    await host.context.close();
  }
});
