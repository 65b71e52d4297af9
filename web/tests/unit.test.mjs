// Pure helpers, no browser: the input packet format, stats summaries, the PNG decoder, and the
// game commands' bookkeeping on a stand-in control channel.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BUTTON, GAMEPAD_BUTTONS, KEYMAP, encodeInput, readGamepad } from '../js/input.js';
import { summarize, viewerReport } from '../js/stats.js';
import { iceTransportPolicy, preferredVideoCodecs, sdpCodecs } from '../js/rtc.js';
import { describeError, ERRORS, COMMAND_ERRORS } from '../js/errors.js';
import { signalingUrl } from '../js/signaling.js';
import { GameControl, MAX_COMMAND_BYTES, USER_ID, playerId } from '../js/saves.js';
import { blockPosition, centroid, decodePng, encodePng, isRed, isWhite } from './pixels.mjs';

test('input packet: the example of docs/protocol.md', () => {
  const bytes = encodeInput(258, (1 << BUTTON.A) | (1 << BUTTON.RIGHT));
  assert.deepEqual([...bytes], [0x01, 0x02, 0x01, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
});

test('input packet: sequence wraps, axes are little-endian i16', () => {
  const bytes = encodeInput(65536 + 5, 0, [-1, 32767, -32767, 256]);
  const v = new DataView(bytes.buffer);
  assert.equal(bytes.length, 13);
  assert.equal(v.getUint16(1, true), 5);
  assert.deepEqual([0, 1, 2, 3].map((i) => v.getInt16(5 + 2 * i, true)), [-1, 32767, -32767, 256]);
});

test('key map covers the documented keys', () => {
  const byCode = Object.fromEntries(KEYMAP.flatMap((k) => k.codes.map((c) => [c, k.button])));
  assert.deepEqual(
    [byCode.ArrowUp, byCode.ArrowDown, byCode.ArrowLeft, byCode.ArrowRight],
    ['UP', 'DOWN', 'LEFT', 'RIGHT'],
  );
  assert.deepEqual(
    [byCode.KeyZ, byCode.KeyX, byCode.KeyA, byCode.KeyS, byCode.Enter, byCode.ShiftLeft, byCode.KeyQ, byCode.KeyW],
    ['B', 'A', 'Y', 'X', 'START', 'SELECT', 'L', 'R'],
  );
});

test('standard gamepad: bottom = B, right = A, d-pad, stick as d-pad', () => {
  const pad = (pressed, axes = [0, 0, 0, 0]) => ({
    buttons: Array.from({ length: 17 }, (_, i) => ({ pressed: pressed.includes(i), value: pressed.includes(i) ? 1 : 0 })),
    axes,
  });
  assert.equal(readGamepad(pad([0])).buttons, 1 << BUTTON.B);
  assert.equal(readGamepad(pad([1])).buttons, 1 << BUTTON.A);
  assert.equal(readGamepad(pad([15])).buttons, 1 << BUTTON.RIGHT);
  const stick = readGamepad(pad([], [-0.9, 0.05, 0, 0]));
  assert.equal(stick.buttons, 1 << BUTTON.LEFT);
  assert.deepEqual(stick.axes, [Math.round(-0.9 * 32767), 0, 0, 0]);
  assert.equal(GAMEPAD_BUTTONS.length, 16);
});

test('stats summary: codec, frames, audio packets, rates, RTT', () => {
  const report = (bytes, frames, t) =>
    new Map(
      [
        { id: 'v', type: 'inbound-rtp', kind: 'video', framesDecoded: frames, bytesReceived: bytes, codecId: 'c1', frameWidth: 256, frameHeight: 240 },
        { id: 'a', type: 'inbound-rtp', kind: 'audio', packetsReceived: 50, bytesReceived: 0, codecId: 'c2' },
        { id: 'c1', type: 'codec', mimeType: 'video/H264' },
        { id: 'c2', type: 'codec', mimeType: 'audio/opus' },
        { id: 't', type: 'transport', selectedCandidatePairId: 'p' },
        { id: 'p', type: 'candidate-pair', currentRoundTripTime: 0.004 },
      ].map((r) => [r.id, r]),
    );
  const first = summarize(report(0, 0), null, 1000);
  const s = summarize(report(125_000, 60), first, 2000);
  assert.equal(s.codec, 'video/H264');
  assert.equal(s.framesDecoded, 60);
  assert.equal(s.fps, 60);
  assert.equal(s.bitrateKbps, 1000);
  assert.equal(s.audioPackets, 50);
  assert.equal(s.rttMs, 4);
  assert.equal(s.width, 256);
});

test('the page reports frames and freezes between two samples, within the bounds the server accepts', () => {
  const at = (t, framesDecoded, freezes, freezeMs) => ({ at: t, framesDecoded, freezes, freezeMs });
  assert.deepEqual(viewerReport(at(1000, 100, 0, 0), at(6000, 400, 2, 250.4)), {
    frames: 300,
    ms: 5000,
    freezes: 2,
    freeze_ms: 250,
  });
  // Nothing to report: no earlier sample, no time, a restarted stream (counters went back).
  assert.equal(viewerReport(at(0, 0, 0, 0), at(5000, 10, 0, 0)), null);
  assert.equal(viewerReport(at(1000, 0, 0, 0), at(1000, 10, 0, 0)), null);
  assert.equal(viewerReport(at(1000, 500, 0, 0), at(6000, 20, 0, 0)), null);
  // Clamped to what a browser can measure (the server refuses the rest).
  assert.deepEqual(viewerReport(at(1000, 0, 0, 0), at(2000, 9000, 0, 5000)), { frames: 500, ms: 1000, freezes: 0, freeze_ms: 1000 });
});

test('codec preference keeps only the wanted codec and rtx', () => {
  const caps = { codecs: [{ mimeType: 'video/H264' }, { mimeType: 'video/VP8' }, { mimeType: 'video/rtx' }, { mimeType: 'video/VP9' }] };
  assert.deepEqual(preferredVideoCodecs(caps, 'vp8').map((c) => c.mimeType), ['video/VP8', 'video/rtx']);
  assert.equal(preferredVideoCodecs(caps, 'av1'), null);
});

test('every protocol error code has a message', () => {
  for (const code of ['no_free_worker', 'unknown_game', 'unknown_room', 'malformed', 'too_large', 'unknown_type',
    'bad_state', 'port_taken', 'worker_lost', 'room_closed', 'internal']) {
    assert.ok(ERRORS[code]?.text, code);
  }
  assert.match(describeError('brand_new').text, /brand_new/);
});

test('PNG round trip with all five filters, and block centroids', () => {
  const [w, h] = [64, 60];
  const rgba = new Uint8Array(w * h * 4);
  for (let p = 0; p < w * h; p++) rgba.set([0, 42, 136, 255], p * 4);
  const fill = (x0, y0, rgb) => {
    for (let y = y0; y < y0 + 4; y++) for (let x = x0; x < x0 + 4; x++) rgba.set([...rgb, 255], (y * w + x) * 4);
  };
  fill(16, 28, [255, 255, 255]);
  fill(44, 28, [181, 49, 32]);
  const img = decodePng(encodePng(w, h, rgba));
  assert.deepEqual([img.width, img.height], [w, h]);
  assert.deepEqual(img.data, rgba);
  assert.deepEqual(centroid(img, isWhite, 16), { x: 17.5, y: 29.5, count: 16 });
  assert.deepEqual(centroid(img, isRed, 16), { x: 45.5, y: 29.5, count: 16 });
  // A 256-wide frame shown at 4x: positions come back in game pixels.
  const big = { width: 1024, height: 960, data: new Uint8Array(1024 * 960 * 4) };
  for (let y = 112 * 4; y < 128 * 4; y++) for (let x = 64 * 4; x < 80 * 4; x++) big.data.set([255, 255, 255, 255], (y * 1024 + x) * 4);
  const pos = blockPosition(big, isWhite, { width: 256, height: 240 });
  assert.ok(Math.abs(pos.x - 71.5) < 0.01 && Math.abs(pos.y - 119.5) < 0.01, JSON.stringify(pos));
  // The same frame letterboxed into a taller element (object-fit: contain).
  const tall = { width: 1024, height: 1160, data: new Uint8Array(1024 * 1160 * 4) };
  tall.data.set(big.data, 100 * 1024 * 4);
  const pos2 = blockPosition(tall, isWhite, { width: 256, height: 240 });
  assert.ok(Math.abs(pos2.x - 71.5) < 0.01 && Math.abs(pos2.y - 119.5) < 0.01, JSON.stringify(pos2));
});

test('codec names of an SDP section', () => {
  const sdp = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0',
    'm=video 9 UDP/TLS/RTP/SAVPF 96 97', 'a=rtpmap:96 VP8/90000', 'a=rtpmap:97 rtx/90000', 'a=fmtp:97 apt=96',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=rtpmap:111 opus/48000/2', ''].join('\r\n');
  assert.deepEqual(sdpCodecs(sdp, 'video'), ['VP8', 'rtx']);
  assert.deepEqual(sdpCodecs(sdp, 'audio'), ['opus']);
  assert.deepEqual(sdpCodecs(sdp, 'application'), []);
});

// ---- game commands (js/saves.js) ----------------------------------------------------------

/** An RTCDataChannel stand-in: records what is sent, replies on demand. */
class FakeChannel extends EventTarget {
  constructor(readyState = 'open') {
    super();
    this.readyState = readyState;
    this.sent = [];
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  open() {
    this.readyState = 'open';
    this.dispatchEvent(new Event('open'));
  }
  close() {
    this.readyState = 'closed';
    this.dispatchEvent(new Event('close'));
  }
  reply(msg) {
    this.dispatchEvent(new MessageEvent('message', { data: JSON.stringify(msg) }));
  }
}

const USER = 'u-12345678';

test('game commands: one in flight at a time, answers matched in order', async () => {
  const ch = new FakeChannel();
  const seen = [];
  const control = new GameControl({ onReply: (r, c) => seen.push([c.t, r.t]) });
  control.attach(ch);
  const save = control.save(USER, 2);
  const slots = control.slots(USER);
  const reset = control.reset();
  assert.deepEqual(ch.sent, [{ t: 'save', p: { user: USER, slot: 2 } }], 'only the first command is sent');
  assert.equal(control.busy, 'save');
  ch.reply({ t: 'saved', p: { slot: 2 } });
  assert.deepEqual(await save, { t: 'saved', p: { slot: 2 } });
  assert.deepEqual(ch.sent[1], { t: 'slots', p: { user: USER } });
  ch.reply({ t: 'slots', p: { slots: [{ slot: 2, saved_ms: 5 }] } });
  assert.deepEqual((await slots).p.slots, [{ slot: 2, saved_ms: 5 }]);
  assert.deepEqual(ch.sent[2], { t: 'reset' }, 'reset has no payload');
  ch.reply({ t: 'failed', p: { command: 'reset', message: 'the emulator did not answer' } });
  assert.deepEqual(await reset, { t: 'failed', p: { command: 'reset', message: 'the emulator did not answer' } });
  assert.equal(control.busy, null);
  assert.deepEqual(seen, [['save', 'saved'], ['slots', 'slots'], ['reset', 'failed']]);
  // An answer to no command, or one that does not fit the command in flight, is ignored.
  ch.reply({ t: 'loaded', p: { slot: 1 } });
  const load = control.load(USER, 1);
  ch.reply({ t: 'saved', p: { slot: 1 } });
  assert.equal(control.busy, 'load');
  ch.reply({ t: 'loaded', p: { slot: 1 } });
  assert.equal((await load).t, 'loaded');
});

test('game commands: a timeout fails the command and its late answer is dropped', async () => {
  const ch = new FakeChannel();
  const control = new GameControl({ timeoutMs: 30 });
  control.attach(ch);
  const save = await control.save(USER, 1);
  assert.equal(save.t, 'failed');
  assert.equal(save.local, true);
  assert.equal(save.p.command, 'save');
  assert.match(save.p.message, /did not answer/);
  const load = control.load(USER, 1);
  ch.reply({ t: 'saved', p: { slot: 1 } }); // the late answer to the save
  assert.equal(control.busy, 'load', 'the late answer does not settle the next command');
  ch.reply({ t: 'loaded', p: { slot: 1 } });
  assert.equal((await load).t, 'loaded');
  // A command the worker never answered does not swallow the next command's answer.
  const lost = await control.reset();
  assert.match(lost.p.message, /did not answer/);
  const slots = control.slots(USER);
  ch.reply({ t: 'slots', p: { slots: [] } });
  assert.equal((await slots).t, 'slots');
});

test('game commands: the channel closing fails what is pending; sending needs a channel', async () => {
  const ch = new FakeChannel('connecting');
  const control = new GameControl();
  const early = await control.save(USER, 1);
  assert.match(early.p.message, /not connected/i);
  control.attach(ch);
  const queued = control.save(USER, 1);
  assert.deepEqual(ch.sent, [], 'nothing is sent before the channel opens');
  ch.open();
  assert.equal(ch.sent.length, 1, 'sent once the channel opens');
  const waiting = control.reset();
  ch.close();
  for (const r of await Promise.all([queued, waiting])) {
    assert.equal(r.t, 'failed');
    assert.match(r.p.message, /closed before it answered/);
  }
  assert.equal(control.state, 'none');
  assert.match((await control.reset()).p.message, /not connected/i);
});

test('game commands: a command over 1024 bytes is refused here', async () => {
  const ch = new FakeChannel();
  const control = new GameControl();
  control.attach(ch);
  const r = await control.save('x'.repeat(MAX_COMMAND_BYTES), 1);
  assert.equal(r.t, 'failed');
  assert.match(r.p.message, /too large/);
  assert.deepEqual(ch.sent, []);
});

test('player id: kept in storage, remade when invalid, per page without storage', () => {
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  const id = playerId(storage);
  assert.match(id, USER_ID);
  assert.equal(playerId(storage), id);
  store.set('retrofarm.user', 'mine_1234');
  assert.equal(playerId(storage), 'mine_1234', 'a valid stored id is used');
  store.set('retrofarm.user', '../bad');
  assert.match(playerId(storage), USER_ID);
  const denied = { getItem: () => { throw new Error('SecurityError'); }, setItem: () => { throw new Error('SecurityError'); } };
  const pageId = playerId(denied);
  assert.match(pageId, USER_ID);
  assert.equal(playerId(denied), pageId, 'the same id for the page life');
  assert.ok(!USER_ID.test('short') && !USER_ID.test('a'.repeat(65)) && USER_ID.test('a'.repeat(64)));
});

test('F2 and F4 are not pad keys; every failed command has a message', () => {
  const codes = KEYMAP.flatMap((k) => k.codes);
  assert.ok(!codes.includes('F2') && !codes.includes('F4'));
  for (const code of Object.values(COMMAND_ERRORS)) assert.equal(ERRORS[code]?.next, 'none', code);
});

test('?relay=1 asks for relay candidates only; anything else for all', () => {
  assert.equal(iceTransportPolicy('?relay=1'), 'relay');
  assert.equal(iceTransportPolicy('?zone=eu&relay=1'), 'relay');
  assert.equal(iceTransportPolicy('?relay=0'), 'all');
  assert.equal(iceTransportPolicy(''), 'all');
  assert.equal(iceTransportPolicy(undefined), 'all');
});

test('signaling goes over wss:// from an https:// page, ws:// from http://', () => {
  const at = (href) => signalingUrl(new URL(href), { room: 'r1', zone: 'eu' });
  assert.equal(at('https://play.example.org/?id=r1'), 'wss://play.example.org/ws?room=r1&zone=eu');
  assert.equal(at('http://127.0.0.1:8000/'), 'ws://127.0.0.1:8000/ws?room=r1&zone=eu');
});

// ---- control bindings, game list navigation, picture shape (docs/controls.md) -------------

import {
  CONTROLS_KEY, PAD_BUTTONS, bindableCode, buttonForCode, defaultBindings, keyLabel, keyLookup, keysLabel, loadBindings,
  padLookup, parseBindings, parseVolume, rebindKey, rebindPad, serializeBindings, storeBindings, validateBindings,
} from '../js/controls.js';
import { PadNavigator, filterGames, letterIndex, moveIndex, padDirection, sortGames } from '../js/lobby.js';
import { containedBox, fitScreen, parseScreen, pointerOnPicture, shownAspect } from '../js/screen.js';
import { mergeAxes, stickVector } from '../js/input.js';
import { NEWS_TYPES } from '../js/saves.js';

test('default bindings are the documented keys and the standard gamepad layout', () => {
  const d = defaultBindings();
  assert.deepEqual(Object.keys(d.keys).sort(), PAD_BUTTONS.slice().sort());
  assert.deepEqual(d.keys.RIGHT, ['ArrowRight']);
  assert.deepEqual(d.keys.START, ['Enter', 'NumpadEnter']);
  assert.deepEqual(d.keys.L2, []);
  // The same map as KEYMAP and GAMEPAD_BUTTONS, so nothing changes for players who never rebind.
  const keys = keyLookup(d);
  for (const k of KEYMAP) for (const c of k.codes) assert.equal(keys.get(c), BUTTON[k.button], c);
  assert.equal(keys.size, KEYMAP.flatMap((k) => k.codes).length);
  assert.deepEqual(padLookup(d), GAMEPAD_BUTTONS);
  assert.equal(d.pad.B, 0);
  assert.equal(d.pad.A, 1);
  assert.equal(d.pad.RIGHT, 15);
});

test('stored bindings: round trip; missing, old, unreadable or invalid data gives the defaults', () => {
  const d = defaultBindings();
  const moved = rebindKey(d, 'RIGHT', 'KeyD');
  assert.deepEqual(parseBindings(serializeBindings(moved)), moved);
  for (const bad of [
    null, '', 'not json', '[]', '{}', JSON.stringify({ v: 2, keys: moved.keys, pad: moved.pad }),
    JSON.stringify({ keys: moved.keys, pad: moved.pad }),
    JSON.stringify({ v: 1, keys: { ...moved.keys, UP: 'ArrowUp' }, pad: moved.pad }),
    JSON.stringify({ v: 1, keys: { ...moved.keys, UP: ['KeyD'] }, pad: moved.pad }), // KeyD twice
    JSON.stringify({ v: 1, keys: { ...moved.keys, UP: ['Escape'] }, pad: moved.pad }), // reserved
    JSON.stringify({ v: 1, keys: { ...moved.keys, UP: ['a b'] }, pad: moved.pad }),
    JSON.stringify({ v: 1, keys: moved.keys, pad: { ...moved.pad, UP: 15 } }), // 15 twice
    JSON.stringify({ v: 1, keys: moved.keys, pad: { ...moved.pad, UP: 1.5 } }),
    JSON.stringify({ v: 1, keys: moved.keys, pad: { ...moved.pad, UP: undefined } }),
    JSON.stringify({ v: 1, keys: { ...moved.keys, UP: ['KeyI', 'KeyJ', 'KeyK', 'KeyL', 'KeyM'] }, pad: moved.pad }),
  ]) {
    assert.deepEqual(parseBindings(bad), d, `defaults for ${bad}`);
  }
  assert.equal(validateBindings({ keys: d.keys }), null);
  // A button without a gamepad button is fine.
  assert.ok(validateBindings({ keys: d.keys, pad: { ...d.pad, L3: null } }));
});

test('storage: kept and read back; broken or missing storage gives the defaults and never throws', () => {
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, String(v)) };
  const b = rebindPad(rebindKey(defaultBindings(), 'A', 'KeyJ'), 'A', 5);
  assert.equal(storeBindings(b, storage), true);
  assert.ok(store.has(CONTROLS_KEY));
  assert.deepEqual(loadBindings(storage), b);
  const broken = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('quota'); } };
  assert.deepEqual(loadBindings(broken), defaultBindings());
  assert.equal(storeBindings(b, broken), false);
  assert.deepEqual(loadBindings(undefined), defaultBindings());
  assert.equal(storeBindings(b, undefined), false);
});

test('rebinding a key: the button gets only that key, and the key leaves the button that had it', () => {
  const d = defaultBindings();
  const b = rebindKey(d, 'RIGHT', 'KeyX'); // KeyX was A's
  assert.deepEqual(b.keys.RIGHT, ['KeyX']);
  assert.deepEqual(b.keys.A, []);
  assert.equal(buttonForCode(b, 'KeyX'), 'RIGHT');
  assert.equal(buttonForCode(b, 'ArrowRight'), null);
  assert.deepEqual(d.keys.RIGHT, ['ArrowRight'], 'the old bindings are unchanged');
  assert.ok(validateBindings(b));
  // Rebinding a button to one of its own keys keeps just that key.
  assert.deepEqual(rebindKey(d, 'START', 'NumpadEnter').keys.START, ['NumpadEnter']);
  // Reserved keys and unknown buttons change nothing.
  for (const code of ['Escape', 'Tab', 'F2', 'F4', 'F11', '', 'Key X']) assert.equal(rebindKey(d, 'UP', code), d, code);
  assert.equal(rebindKey(d, 'TURBO', 'KeyD'), d);
  assert.equal(bindableCode('KeyF'), true);
  assert.equal(bindableCode('F5'), false);
});

test('rebinding a gamepad button: another button that had it loses it', () => {
  const d = defaultBindings();
  const b = rebindPad(d, 'A', 0); // 0 (bottom) was B's
  assert.equal(b.pad.A, 0);
  assert.equal(b.pad.B, null);
  assert.equal(padLookup(b)[0], BUTTON.A);
  assert.equal(padLookup(b)[1], undefined);
  assert.ok(validateBindings(b));
  assert.equal(rebindPad(d, 'A', -1), d);
  assert.equal(rebindPad(d, 'A', 99), d);
  // readGamepad follows the mapping it is given.
  const pad = { buttons: Array.from({ length: 17 }, (_, i) => ({ pressed: i === 0, value: i === 0 ? 1 : 0 })), axes: [0, 0, 0, 0] };
  assert.equal(readGamepad(pad, padLookup(b)).buttons, 1 << BUTTON.A);
});

test('key names for the settings panel', () => {
  assert.equal(keyLabel('KeyD'), 'D');
  assert.equal(keyLabel('Digit7'), '7');
  assert.equal(keyLabel('ArrowLeft'), '←');
  assert.equal(keyLabel('Numpad4'), 'Num 4');
  assert.deepEqual(keysLabel(['ShiftLeft', 'ShiftRight']), ['Shift']);
  assert.deepEqual(keysLabel(['ShiftRight']), ['Right Shift']);
  assert.deepEqual(keysLabel(['Enter', 'NumpadEnter']), ['Enter']);
});

test('volume: a stored 0..1, else full', () => {
  assert.equal(parseVolume('0.25'), 0.25);
  assert.equal(parseVolume('0'), 0);
  for (const bad of [null, '', 'loud', '1.5', '-0.1', 'NaN']) assert.equal(parseVolume(bad), 1, String(bad));
});

test('game list: sorted by system then name, filtered by words of name or system', () => {
  const games = [
    { name: 'Zelda', system: 'nes' }, { name: 'advance wars', system: 'gba' }, { name: 'Metroid', system: 'nes' },
  ];
  assert.deepEqual(sortGames(games).map((g) => g.name), ['advance wars', 'Metroid', 'Zelda']);
  assert.deepEqual(filterGames(games, 'NES').map((g) => g.name), ['Zelda', 'Metroid']);
  assert.deepEqual(filterGames(games, 'met nes').map((g) => g.name), ['Metroid']);
  assert.deepEqual(filterGames(games, '  ').length, 3);
  assert.deepEqual(filterGames(games, 'snes'), []);
});

test('game list: arrows in a wrapped grid, Home/End, no wrapping at the edges', () => {
  // 7 games, 3 to a row: rows [0 1 2] [3 4 5] [6].
  assert.equal(moveIndex('ArrowRight', 0, 7, 3), 1);
  assert.equal(moveIndex('ArrowRight', 6, 7, 3), 6);
  assert.equal(moveIndex('ArrowLeft', 0, 7, 3), 0);
  assert.equal(moveIndex('ArrowDown', 1, 7, 3), 4);
  assert.equal(moveIndex('ArrowDown', 4, 7, 3), 6, 'down into a short last row');
  assert.equal(moveIndex('ArrowDown', 6, 7, 3), 6);
  assert.equal(moveIndex('ArrowUp', 4, 7, 3), 1);
  assert.equal(moveIndex('ArrowUp', 2, 7, 3), 2, 'up from the first row stays');
  assert.equal(moveIndex('Home', 5, 7, 3), 0);
  assert.equal(moveIndex('End', 1, 7, 3), 6);
  assert.equal(moveIndex('down', 0, 7, 1), 1, 'a gamepad direction, one column');
  assert.equal(moveIndex('Enter', 0, 7, 3), null);
  assert.equal(moveIndex('ArrowDown', 0, 0, 3), null);
  assert.equal(moveIndex('ArrowDown', 0, 1, 1), 0);
});

test('game list: typing a letter jumps to the next game starting with it, wrapping', () => {
  const names = ['Alpha', 'Bravo', 'alpine', 'Charlie'];
  assert.equal(letterIndex(names, 0, 'a'), 2);
  assert.equal(letterIndex(names, 2, 'A'), 0);
  assert.equal(letterIndex(names, 0, 'c'), 3);
  assert.equal(letterIndex(names, 0, 'z'), -1);
  assert.equal(letterIndex(names, 0, ' '), -1);
  assert.equal(letterIndex(['Only'], 0, 'o'), 0, 'a single match is itself');
});

test('game list with a gamepad: edges and repeats of the d-pad/stick, button 0 starts, B does nothing', () => {
  const pad = (pressed = [], axes = [0, 0, 0, 0]) => ({
    buttons: Array.from({ length: 17 }, (_, i) => ({ pressed: pressed.includes(i), value: pressed.includes(i) ? 1 : 0 })),
    axes,
  });
  assert.equal(padDirection(pad([13])), 'down');
  assert.equal(padDirection(pad([], [0.9, 0.2])), 'right');
  assert.equal(padDirection(pad([], [0.1, -0.8])), 'up');
  assert.equal(padDirection(pad([], [0.3, 0.3])), null);
  const nav = new PadNavigator();
  assert.deepEqual(nav.step(pad([0]), 0), [], 'A held when the lobby shows does not start');
  assert.deepEqual(nav.step(pad(), 10), []);
  assert.deepEqual(nav.step(pad([0]), 20), ['start']);
  assert.deepEqual(nav.step(pad([0]), 30), [], 'held: once');
  assert.deepEqual(nav.step(pad([1, 8]), 40), [], 'B and Back do nothing');
  assert.deepEqual(nav.step(pad([15]), 100), ['right']);
  assert.deepEqual(nav.step(pad([15]), 300), []);
  assert.deepEqual(nav.step(pad([15]), 500), ['right'], 'repeats after the delay');
  assert.deepEqual(nav.step(pad([15]), 600), []);
  assert.deepEqual(nav.step(pad([15]), 650), ['right']);
  assert.deepEqual(nav.step(null, 700), []);
});

test('screen news: valid shapes, malformed ones refused', () => {
  assert.deepEqual(parseScreen({ aspect: 1.3333, rotation: 0 }), { aspect: 1.3333, rotation: 0 });
  assert.deepEqual(parseScreen({ aspect: 0.75, rotation: 3 }), { aspect: 0.75, rotation: 3 });
  for (const bad of [
    null, 'x', {}, { aspect: 0, rotation: 0 }, { aspect: -1, rotation: 0 }, { aspect: Infinity, rotation: 0 },
    { aspect: NaN, rotation: 0 }, { aspect: '1.33', rotation: 0 }, { aspect: 1.33 }, { aspect: 1.33, rotation: 4 },
    { aspect: 1.33, rotation: 1.5 }, { aspect: 1.33, rotation: -1 }, { aspect: 1000, rotation: 0 },
  ]) {
    assert.equal(parseScreen(bad), null, JSON.stringify(bad));
  }
  assert.ok(NEWS_TYPES.has('screen'));
});

test('screen shape: fits the area at the shown aspect; a quarter turn swaps the element', () => {
  assert.equal(shownAspect({ aspect: 4 / 3, rotation: 0 }), 4 / 3);
  assert.equal(shownAspect({ aspect: 4 / 3, rotation: 1 }), 3 / 4);
  const wide = fitScreen({ aspect: 4 / 3, rotation: 0 }, 800, 800);
  assert.deepEqual([wide.width, wide.height, wide.elementWidth, wide.elementHeight], [800, 600, 800, 600]);
  assert.equal(wide.transform, 'translate(-50%, -50%)');
  const tall = fitScreen({ aspect: 4 / 3, rotation: 1 }, 800, 600);
  assert.deepEqual([tall.width, tall.height], [450, 600]);
  assert.deepEqual([tall.elementWidth, tall.elementHeight], [600, 450], 'turned: the element is 4:3 before turning');
  assert.equal(tall.transform, 'translate(-50%, -50%) rotate(-90deg)');
  assert.equal(fitScreen({ aspect: 2, rotation: 2 }, 100, 100).transform, 'translate(-50%, -50%) rotate(-180deg)');
});

test('control channel: screen news goes to onNews, not to the command waiting for its answer', async () => {
  const ch = new FakeChannel();
  const news = [];
  const c = new GameControl({ onNews: (m) => news.push(m) });
  c.attach(ch);
  const slots = c.slots('player-0001');
  ch.reply({ t: 'screen', p: { aspect: 1.3333, rotation: 0 } });
  assert.equal(c.busy, 'slots', 'still waiting for the slots answer');
  ch.reply({ t: 'slots', p: { slots: [] } });
  assert.deepEqual(await slots, { t: 'slots', p: { slots: [] } });
  ch.reply({ t: 'screen', p: { aspect: 1.5, rotation: 1 } }); // with nothing in flight
  assert.deepEqual(news.map((m) => m.p.aspect), [1.3333, 1.5]);
  // News between a timed-out command and its late answer leaves that answer to be dropped.
  const slow = new GameControl({ timeoutMs: 20, onNews: (m) => news.push(m) });
  const ch2 = new FakeChannel();
  slow.attach(ch2);
  assert.equal((await slow.save(USER, 1)).local, true);
  const load = slow.load(USER, 1);
  ch2.reply({ t: 'screen', p: { aspect: 1.3333, rotation: 0 } });
  ch2.reply({ t: 'saved', p: { slot: 1 } }); // the late answer to the save
  assert.equal(slow.busy, 'load');
  ch2.reply({ t: 'loaded', p: { slot: 1 } });
  assert.equal((await load).t, 'loaded');
  assert.equal(news.length, 3);
});

test('touch sticks: offset within the circle, and they take over the gamepad axes they move', () => {
  assert.deepEqual(stickVector(0, 0, 50), { x: 0, y: 0 });
  assert.deepEqual(stickVector(15, -20, 50), { x: 0.3, y: -0.4 });
  const far = stickVector(300, 400, 50);
  assert.ok(Math.abs(far.x - 0.6) < 1e-9 && Math.abs(far.y - 0.8) < 1e-9);
  assert.deepEqual(stickVector(1, 1, 0), { x: 0, y: 0 });
  assert.deepEqual(mergeAxes([100, -100, 5, 6], [0, 0, 32767, 0]), [100, -100, 32767, 6]);
});

test('input packet version 2 carries the pointer after the pad', () => {
  const bytes = encodeInput(258, 1 << BUTTON.A, [0, 0, 0, 0], { x: -0x7fff, y: 0x0102, pressed: true });
  assert.equal(bytes.length, 18);
  assert.deepEqual([...bytes.slice(0, 5)], [2, 0x02, 0x01, 0x00, 0x01]);
  assert.deepEqual([...bytes.slice(13)], [0x01, 0x80, 0x02, 0x01, 1]);
  const hover = encodeInput(1, 0, undefined, { x: 0, y: 0, pressed: false });
  assert.equal(hover[17], 0);
  assert.equal(encodeInput(1, 0).length, 13, 'no pointer: version 1');
});

test('a point on the shown picture maps to the core picture, turn undone', () => {
  const box = { left: 100, top: 50, width: 400, height: 300 };
  assert.deepEqual(pointerOnPicture(box, 0, 100, 50), { x: -0x7fff, y: -0x7fff });
  assert.deepEqual(pointerOnPicture(box, 0, 500, 350), { x: 0x7fff, y: 0x7fff });
  assert.deepEqual(pointerOnPicture(box, 0, 300, 200), { x: 0, y: 0 });
  assert.equal(pointerOnPicture(box, 0, 99, 200), null, 'left of the picture');
  assert.equal(pointerOnPicture(box, 0, 300, 351), null, 'below it');
  // Shown turned a quarter counter-clockwise: the shown top-left corner is the picture's
  // top-right one; the shown bottom-left its top-left.
  assert.deepEqual(pointerOnPicture(box, 1, 100, 50), { x: 0x7fff, y: -0x7fff });
  assert.deepEqual(pointerOnPicture(box, 1, 100, 350), { x: -0x7fff, y: -0x7fff });
  assert.deepEqual(pointerOnPicture(box, 2, 100, 50), { x: 0x7fff, y: 0x7fff });
  assert.deepEqual(pointerOnPicture(box, 3, 100, 50), { x: -0x7fff, y: 0x7fff });
});

test('the picture contained in an element keeps its shape, centred', () => {
  assert.deepEqual(containedBox({ left: 0, top: 0, width: 400, height: 400 }, 2), { left: 0, top: 100, width: 400, height: 200 });
  assert.deepEqual(containedBox({ left: 10, top: 0, width: 400, height: 100 }, 2), { left: 110, top: 0, width: 200, height: 100 });
  const r = { left: 0, top: 0, width: 0, height: 0 };
  assert.equal(containedBox(r, 2), r, 'nothing shown yet');
});
