// Issue 16 in a real Chromium: the picture at the core's shape (the worker's `screen` news), a key
// remapped in the settings panel drives the game and stays after a reload, the game list works
// from the keyboard alone or a gamepad, and on a touch screen the on-screen pad plays. The
// workers' games folder holds the homebrew game under three names (copies in a temporary
// folder), so the list has entries to move between.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';

import { BUTTON } from '../js/input.js';
import { GAME, GAMES_DIR, keepArtifact, launchBrowser, openPage, scenario, sleep, startCluster, testDir, waitForState } from './harness.mjs';
import { blockPosition, decodePng, isWhite, videoFrame } from './pixels.mjs';

/** The list as the page sorts it (one system: by name). */
const GAMES = ['Another Walk', GAME, 'Zebra Walk'];
/** Player 1's block centre at power-on (games/README.md), and how long a direction is held. */
const START = { x: 71.5, y: 119.5 };
const HOLD_MS = 700;

let cluster;
let browser;
let gamesDir;

before(async () => {
  gamesDir = testDir();
  for (const name of GAMES) fs.copyFileSync(path.join(GAMES_DIR, `${GAME}.nes`), path.join(gamesDir, `${name}.nes`));
  [cluster, browser] = await Promise.all([startCluster({ gamesDir }), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
  if (gamesDir) fs.rmSync(gamesDir, { recursive: true, force: true });
});

/** Waits until the video decodes `frames` frames. */
async function waitForFrames(page, frames = 30, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const stats = await page.evaluate(() => window.retrofarm.pollStats());
    const width = await page.evaluate(() => document.getElementById('video').videoWidth);
    if (stats.framesDecoded >= frames && width > 0) return stats;
    assert.ok(Date.now() < end, `no video within ${timeoutMs} ms: ${JSON.stringify(stats)}`);
    await sleep(150);
  }
}

/** The stats overlay's white text would count as the white block: hide it. */
async function hideStats(page) {
  await page.getByRole('button', { name: 'Stats' }).click();
  await page.locator('#stats').waitFor({ state: 'hidden' });
}

/** Player 1's block centre in README coordinates, once it stops moving. */
async function settledBlock(page, name) {
  const once = async () => {
    const png = await page.locator('#video').screenshot();
    keepArtifact(`controls-${name}.png`, png);
    const frame = await videoFrame(page);
    const p = blockPosition(decodePng(png), isWhite, frame);
    return p && { x: p.x + (256 - frame.width) / 2, y: p.y + (240 - frame.height) / 2 };
  };
  let prev = await once();
  const end = Date.now() + 2000;
  while (Date.now() < end) {
    await sleep(150);
    const cur = await once();
    if (prev && cur && Math.abs(prev.x - cur.x) < 1 && Math.abs(prev.y - cur.y) < 1) return cur;
    prev = cur;
  }
  return prev;
}

/** The input state the page sent last ({buttons, axes, pointer}). */
function sentLast(page) {
  return page.evaluate(() => window.retrofarm.inputLast());
}

async function hold(page, key, ms) {
  await page.focus('#screen');
  await page.keyboard.down(key);
  await sleep(ms);
  await page.keyboard.up(key);
}

/** The focused element: a game's name, else its id. */
function focused(page) {
  return page.evaluate(() => document.activeElement?.dataset?.game ?? document.activeElement?.id ?? null);
}

async function startByClick(page) {
  await waitForState(page, (s) => s.phase === 'choosing', { what: 'lobby' });
  await page.getByRole('button', { name: new RegExp(GAME) }).click();
  await waitForState(page, (s) => s.phase === 'playing', { what: 'game_started' });
  await waitForFrames(page);
}

scenario('the game list works from the keyboard alone: arrows, Home/End, a letter, Tab, Enter', async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'keyboard player' });
  try {
    await waitForState(page, (s) => s.phase === 'choosing' && s.games.length === 3, { what: 'lobby with 3 games' });
    const names = await page.locator('#games button').evaluateAll((bs) => bs.map((b) => b.dataset.game));
    assert.deepEqual(names, GAMES, 'the list is sorted by system, then name');
    // The first game has the keyboard as soon as the lobby shows, and is the list's only tab stop.
    await page.waitForFunction((first) => document.activeElement?.dataset?.game === first, GAMES[0], { timeout: 5000 });
    const stops = async () => page.locator('#games button[tabindex="0"]').evaluateAll((bs) => bs.map((b) => b.dataset.game));
    assert.deepEqual(await stops(), [GAMES[0]]);

    const press = async (key, want) => {
      await page.keyboard.press(key);
      assert.equal(await focused(page), want, `after ${key}`);
    };
    await press('ArrowRight', GAME);
    await press('ArrowRight', 'Zebra Walk');
    await press('ArrowRight', 'Zebra Walk'); // no wrapping
    await press('ArrowLeft', GAME);
    await press('Home', 'Another Walk');
    await press('End', 'Zebra Walk');
    await press('ArrowUp', 'Zebra Walk'); // the first row: nowhere up (no filter box for 3 games)
    await press('a', 'Another Walk');
    await press('z', 'Zebra Walk');
    await press('r', GAME);
    assert.deepEqual(await stops(), [GAME], 'the tab stop follows the focus (roving tabindex)');

    // Tab leaves the list and comes back to the same game.
    await page.keyboard.press('Shift+Tab');
    assert.notEqual(await focused(page), GAME);
    await page.keyboard.press('Tab');
    assert.equal(await focused(page), GAME, 'Tab comes back to the game that had the focus');

    await page.keyboard.press('Enter');
    const s = await waitForState(page, (s) => s.phase === 'playing', { what: 'game_started after Enter' });
    assert.equal(s.game, GAME);
  } finally {
    await context.close();
  }
});

scenario('the picture is shown at the shape the core declares (screen news), not at its pixel shape; a pointer on it is sent', async (t) => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'shape viewer' });
  try {
    await startByClick(page);
    const s = await waitForState(page, (s) => !!s.screen, {
      what: 'a screen message from the worker',
      timeout: 10_000,
    });
    t.diagnostic(`screen news: ${JSON.stringify(s.screen)}`);
    const { aspect, rotation } = s.screen;
    const shown = rotation % 2 === 1 ? 1 / aspect : aspect;
    // Let the layout follow, then measure what shows the picture.
    await sleep(200);
    const box = await page.evaluate(() => {
      const r = document.getElementById('video').getBoundingClientRect();
      const v = document.getElementById('video');
      return { width: r.width, height: r.height, videoWidth: v.videoWidth, videoHeight: v.videoHeight };
    });
    t.diagnostic(`displayed ${box.width.toFixed(1)}×${box.height.toFixed(1)} for a ${box.videoWidth}×${box.videoHeight} stream`);
    const ratio = box.width / box.height;
    assert.ok(box.width > 100, `the picture is shown: ${JSON.stringify(box)}`);
    assert.ok(Math.abs(ratio / shown - 1) < 0.02, `displayed ${ratio.toFixed(4)}, the core's shape ${shown.toFixed(4)}`);
    assert.equal(rotation, 0, 'the NES core does not rotate');
    // nestopia (its default `nestopia_aspect`, auto) declares the NTSC 8:7 pixel aspect over the
    // frame it outputs: 256×224 → 64/49 ≈ 1.306, not quite 4:3. Either is a core's own shape;
    // the pixel shape (256/224 ≈ 1.143, 256/240 ≈ 1.067) is not.
    const ntsc = ((8 / 7) * box.videoWidth) / box.videoHeight;
    const near = (v, want) => Math.abs(v / want - 1) < 0.01;
    t.diagnostic(`aspect ${aspect}: 4:3 would be ${(4 / 3).toFixed(4)}, 8:7 pixels ${ntsc.toFixed(4)}`);
    assert.ok(near(aspect, 4 / 3) || near(aspect, ntsc), `nestopia declares ${aspect}, expected about 4:3 or ${ntsc.toFixed(4)}`);
    // The stretched picture still puts the block where the game draws it.
    await hideStats(page);
    const p = await settledBlock(page, 'shape');
    assert.ok(p && Math.abs(p.x - START.x) <= 3 && Math.abs(p.y - START.y) <= 3, `block at ${JSON.stringify(p)}`);

    // A mouse pressed three quarters across and down the picture: the page sends the pointer
    // there (libretro's 0x3fff, 0x3fff) in version 2 packets, which the worker takes.
    const r = await page.locator('#video').boundingBox();
    await page.mouse.move(r.x + r.width * 0.75, r.y + r.height * 0.75);
    await page.mouse.down();
    await sleep(300);
    const down = (await sentLast(page)).pointer;
    const nearQuarter = (v) => Math.abs(v - 0x3fff) < 200;
    assert.ok(down && down.pressed && nearQuarter(down.x) && nearQuarter(down.y), `pointer sent: ${JSON.stringify(down)}`);
    await page.mouse.up();
    await sleep(300);
    assert.equal((await sentLast(page)).pointer?.pressed, false, 'released');
    await page.mouse.move(r.x - 20, r.y - 20);
    await sleep(300);
    assert.equal((await sentLast(page)).pointer, null, 'off the picture: none');
    const worker = [...cluster.workers.values()][0];
    assert.ok(!worker.output.includes('ignoring bad input packet'), 'the worker took every packet');
  } finally {
    await context.close();
  }
});

scenario('a key remapped in the settings panel drives the game, the old key does not, and it stays after a reload', { timeout: 90_000 }, async (t) => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'remapping player' });
  try {
    await startByClick(page);
    await hideStats(page);

    // As a player would: Settings, "Change" on Right, press D.
    await page.getByRole('button', { name: 'Settings' }).click();
    const row = page.locator('#bindings tr[data-binding="RIGHT"]');
    assert.equal((await row.locator('td.keys').textContent()).trim(), '→');
    await page.getByRole('button', { name: 'Change Right' }).click();
    await page.keyboard.press('KeyD');
    assert.equal((await row.locator('td.keys').textContent()).trim(), 'D');
    assert.match(await page.locator('#rebind-status').textContent(), /Right is now the D key/);
    const stored = JSON.parse(await page.evaluate(() => localStorage.getItem('retrofarm.controls')));
    assert.equal(stored.v, 1);
    assert.deepEqual(stored.keys.RIGHT, ['KeyD']);
    // Escape closes the panel and gives the keyboard back to its button.
    await page.keyboard.press('Escape');
    await page.locator('#settings').waitFor({ state: 'hidden' });
    assert.equal(await focused(page), 'settings-toggle');
    assert.match(await page.locator('#keymap tr[data-button="RIGHT"]').textContent(), /D/);

    const start = await settledBlock(page, 'start');
    assert.ok(start && Math.abs(start.x - START.x) <= 3, `block at start: ${JSON.stringify(start)}`);
    await hold(page, 'ArrowRight', HOLD_MS);
    const still = await settledBlock(page, 'arrow');
    assert.ok(Math.abs(still.x - start.x) < 3, `ArrowRight no longer moves the block: ${start.x} → ${still.x}`);
    await hold(page, 'KeyD', HOLD_MS);
    const moved = await settledBlock(page, 'd');
    const dx = moved.x - start.x;
    t.diagnostic(`holding D for ${HOLD_MS} ms moved the block ${dx.toFixed(1)} px`);
    assert.ok(dx >= 40 && dx <= 100, `D moved the block ${dx.toFixed(1)} px (expected ~84)`);
    assert.ok(Math.abs(moved.y - start.y) < 3, 'and not vertically');

    // A reload rejoins the room; the binding is still there.
    await page.reload();
    await waitForState(page, (s) => s.phase === 'playing', { what: 'rejoined after the reload' });
    await waitForFrames(page);
    await hideStats(page);
    await page.getByRole('button', { name: 'Settings' }).click();
    assert.equal((await page.locator('#bindings tr[data-binding="RIGHT"] td.keys').textContent()).trim(), 'D');
    await page.getByRole('button', { name: 'Close' }).click();
    const back = await settledBlock(page, 'reloaded');
    assert.ok(Math.abs(back.x - moved.x) <= 3, `the room kept the block where it was: ${JSON.stringify(back)}`);
    await hold(page, 'KeyD', 300);
    const again = await settledBlock(page, 'reloaded-d');
    assert.ok(again.x - back.x >= 10, `D still moves right after the reload: ${back.x} → ${again.x}`);
  } finally {
    await context.close();
  }
});

/** A stand-in standard gamepad: `window.fakePad(buttons, axes)` sets what it holds. */
const FAKE_GAMEPAD = `
  (() => {
    const pad = { id: 'fake pad', index: 0, connected: true, mapping: 'standard', timestamp: 0, axes: [0, 0, 0, 0],
      buttons: Array.from({ length: 17 }, () => ({ pressed: false, touched: false, value: 0 })) };
    navigator.getGamepads = () => [pad, null, null, null];
    window.fakePad = (held = [], axes = [0, 0, 0, 0]) => {
      pad.buttons.forEach((b, i) => { b.pressed = held.includes(i); b.value = b.pressed ? 1 : 0; });
      pad.axes = axes;
      pad.timestamp += 1;
    };
  })();
`;

scenario('a gamepad moves through the game list and starts a game; a gamepad button can be rebound', async () => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, { name: 'gamepad player', initScript: FAKE_GAMEPAD });
  try {
    await waitForState(page, (s) => s.phase === 'choosing' && s.games.length === 3, { what: 'lobby' });
    await page.waitForFunction((first) => document.activeElement?.dataset?.game === first, GAMES[0], { timeout: 5000 });
    const tap = async (held, axes) => {
      await page.evaluate(([h, a]) => window.fakePad(h, a), [held, axes]);
      await sleep(100);
      await page.evaluate(() => window.fakePad());
      await sleep(100);
    };
    await tap([15]); // d-pad right
    assert.equal(await focused(page), GAME);
    await tap([], [0.9, 0, 0, 0]); // left stick right
    assert.equal(await focused(page), 'Zebra Walk');
    await tap([14]); // d-pad left
    assert.equal(await focused(page), GAME);
    await tap([1]); // B: nothing
    await tap([8]); // Back: nothing
    assert.equal(await focused(page), GAME);
    assert.equal((await page.evaluate(() => window.retrofarm.state.phase)), 'choosing');

    // Settings: A takes the right bumper (5); the bumper leaves R.
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByRole('button', { name: 'Change A' }).click();
    await tap([5]);
    const padOf = (b) => page.locator(`#bindings tr[data-binding="${b}"] td.pad`).textContent();
    assert.equal(await padOf('A'), 'Right bumper');
    assert.equal(await padOf('R'), 'none');
    const stored = JSON.parse(await page.evaluate(() => localStorage.getItem('retrofarm.controls')));
    assert.equal(stored.pad.A, 5);
    await page.getByRole('button', { name: 'Reset to defaults' }).click();
    assert.equal(await padOf('A'), 'Right face (B / Circle)');
    await page.getByRole('button', { name: 'Close' }).click();

    await page.locator(`#games button[data-game="${GAME}"]`).focus();
    await tap([0]); // bottom face button: start
    const s = await waitForState(page, (s) => s.phase === 'playing', { what: 'game_started from the gamepad' });
    assert.equal(s.game, GAME);
  } finally {
    await context.close();
  }
});

scenario('on a touch screen the on-screen pad plays: the d-pad moves the block, L and the right stick are sent, two fingers at once', async (t) => {
  const { page, context } = await openPage(browser, `${cluster.url}/`, {
    name: 'touch player',
    viewport: { width: 420, height: 900 },
    device: { hasTouch: true, isMobile: true },
  });
  try {
    await waitForState(page, (s) => s.phase === 'choosing', { what: 'lobby' });
    await page.locator(`#games button[data-game="${GAME}"]`).tap();
    await waitForState(page, (s) => s.phase === 'playing', { what: 'game_started from a tap' });
    await waitForFrames(page);
    await hideStats(page);
    assert.ok(await page.locator('#touchpad').isVisible(), 'a touch screen shows the on-screen pad (pointer: coarse)');

    // Raw touches through the DevTools protocol: a finger stays down as long as we hold it.
    const cdp = await context.newCDPSession(page);
    const touch = (type, points) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: points });
    const centre = async (selector) => {
      const el = page.locator(selector);
      await el.scrollIntoViewIfNeeded();
      const r = await el.boundingBox();
      return { x: r.x + r.width / 2, y: r.y + r.height / 2, r };
    };
    const bit = (name) => 1 << BUTTON[name];

    // The d-pad's right arrow, held: the block walks right as with the keyboard.
    const start = await settledBlock(page, 'touch-start');
    assert.ok(start && Math.abs(start.x - START.x) <= 3, `block at start: ${JSON.stringify(start)}`);
    const right = await centre('#touchpad [data-button="RIGHT"]');
    await touch('touchStart', [{ x: right.x, y: right.y, id: 1 }]);
    await sleep(HOLD_MS);
    await touch('touchEnd', []);
    const moved = await settledBlock(page, 'touch-right');
    const dx = moved.x - start.x;
    t.diagnostic(`holding the touch pad's right arrow for ${HOLD_MS} ms moved the block ${dx.toFixed(1)} px`);
    assert.ok(dx >= 40 && dx <= 100, `the touch pad's right arrow moved the block ${dx.toFixed(1)} px (expected ~84)`);
    assert.equal((await sentLast(page)).buttons, 0, 'released with the finger');

    // L, then L and A with two fingers at once; lifting one keeps the other.
    const l = await centre('#touchpad [data-button="L"]');
    const a = await centre('#touchpad [data-button="A"]');
    await touch('touchStart', [{ x: l.x, y: l.y, id: 1 }]);
    await sleep(200);
    assert.equal((await sentLast(page)).buttons, bit('L'), 'L held');
    await touch('touchStart', [{ x: l.x, y: l.y, id: 1 }, { x: a.x, y: a.y, id: 2 }]);
    await sleep(200);
    assert.equal((await sentLast(page)).buttons, bit('L') | bit('A'), 'L and A held together');
    await touch('touchEnd', [{ x: l.x, y: l.y, id: 1 }]);
    await sleep(200);
    assert.equal((await sentLast(page)).buttons, bit('A'), 'the finger on L lifted, A still held');
    await touch('touchEnd', []);
    await sleep(200);
    assert.equal((await sentLast(page)).buttons, 0, 'both lifted');

    // The right stick: a finger pushed right of its centre, then up; lifted, it centres.
    const stick = await centre('#touchpad [data-stick="1"]');
    // Inside the stick's circle, past its full-scale one (0.8 of the radius).
    const reach = stick.r.width * 0.45;
    await touch('touchStart', [{ x: stick.x + reach, y: stick.y, id: 1 }]);
    await sleep(200);
    let axes = (await sentLast(page)).axes;
    assert.ok(axes[2] > 30_000 && Math.abs(axes[3]) < 1000, `right stick pushed right: ${axes}`);
    assert.deepEqual(axes.slice(0, 2), [0, 0], 'the left stick stays centred');
    await touch('touchMove', [{ x: stick.x, y: stick.y - reach, id: 1 }]);
    await sleep(200);
    axes = (await sentLast(page)).axes;
    assert.ok(axes[3] < -30_000 && Math.abs(axes[2]) < 1000, `right stick pushed up: ${axes}`);
    await touch('touchEnd', []);
    await sleep(200);
    assert.deepEqual((await sentLast(page)).axes, [0, 0, 0, 0], 'lifted: centred');

    const worker = [...cluster.workers.values()][0];
    assert.ok(!worker.output.includes('ignoring bad input packet'), 'the worker took every packet');
  } finally {
    await context.close();
  }
});
