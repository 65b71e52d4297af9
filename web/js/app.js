// Wiring: signaling ⇄ latency check ⇄ peer ⇄ input, game commands (control channel), stats, and the page's UI.
// The session's steps follow docs/protocol.md, section 1 ("Sequence").

import { Signaling, signalingUrl, FROM_SERVER, TO_SERVER } from './signaling.js';
import { measureLatency } from './latency.js';
import { GamePeer, sdpCodecs } from './rtc.js';
import { PadInput, stickVector } from './input.js';
import { REPORT_INTERVAL_MS, StatsSampler, emptyStats, viewerReport } from './stats.js';
import { describeError, COMMAND_ERRORS } from './errors.js';
import { GameControl, SLOTS, formatSavedAt, playerId } from './saves.js';
import {
  BUTTON_LABELS, FULLSCREEN_CODE, PAD_BUTTONS, VOLUME_KEY, bindableCode, buttonForCode, defaultBindings, keyLabel,
  keyLookup, keysLabel, loadBindings, padLabel, padLookup, parseVolume, readStorage, rebindKey, rebindPad, storeBindings,
  writeStorage,
} from './controls.js';
import { FILTER_MIN_GAMES, PadNavigator, filterGames, letterIndex, moveIndex, sortGames } from './lobby.js';
import { containedBox, fitScreen, parseScreen, pointerOnPicture, shownAspect } from './screen.js';

const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
const shareRoom = params.get('id') || null;
// Set (with `id`) by this page while it plays, so that a reload goes back to the same room and
// port at once: the worker keeps an emptied room a while for its players to come back.
const rejoinPort = /^[0-4]$/.test(params.get('port') ?? '') ? Number(params.get('port')) : null;
const zone = params.get('zone') || null;
const codec = (params.get('codec') || '').toLowerCase() || null;

/** What tests (and curious players) can read: window.retrofarm.state. */
const state = {
  /**
   * connecting → checking → choosing → starting → playing. Also: `unavailable` (no free
   * worker), `lost` (the worker went away), `closed` (the WebSocket closed).
   */
  phase: 'connecting',
  session: null,
  /**
   * The signaling WebSocket: `open`, or `reconnecting` while a game plays on without it (the
   * stream comes straight from the game server; a coordinator restart costs the game nothing)
   * until the new session knows a server for us (its `init`).
   */
  signaling: 'connecting',
  /** The signaling session the running game was started in (a reconnection opens a new one). */
  gameSession: null,
  worker: null, // {id, zone}
  latency: null, // the results sent in `latency`
  games: [],
  /** The share link's room until the game starts, then the room being played. */
  room: shareRoom,
  port: rejoinPort ?? (shareRoom ? 2 : 1),
  game: null,
  codec,
  rtc: 'none', // RTCPeerConnection.connectionState
  input: 'none', // the input data channel's readyState
  inputChannel: null, // {ordered, maxRetransmits, maxPacketLifeTime} as negotiated
  control: 'none', // the control data channel's readyState
  /** This browser's player id: whose save slots `save`, `load` and `slots` use. */
  user: playerId(),
  slot: 1, // the slot selected in the Game panel
  /** The player's saved slots for this game, [{slot, saved_ms}], or null until the worker says. */
  slots: null,
  /** The command waiting for the worker's answer (`save`, `load`, `slots`, `reset`), or null. */
  gameCommand: null,
  /**
   * The last answer on the control channel, `{t, p}` as the worker sent it (a `failed` made by
   * the page, e.g. after a timeout, has `local: true`), and every answer so far, in order.
   */
  gameReply: null,
  gameReplies: [],
  videoCodecs: [], // video codecs of the page's SDP answer, in order of preference
  /** The last error code (null when none is shown) and every code seen, in order. */
  error: null,
  errorMessage: null,
  errors: [],
  shareLink: null,
  audioBlocked: false,
  /**
   * The picture's shape from the worker's `screen` news, `{aspect, rotation}` (aspect: width /
   * height before rotation; rotation: quarter turns counter-clockwise), or null before the first
   * one (the video then keeps its own pixel shape).
   */
  screen: null,
};

let signaling = null;
let peer = null;
let iceServers = [];

/** The sample the last `report` to the game server went up to. */
let reported = null;

const stats = new StatsSampler($('stats-list'), (s) => {
  window.retrofarm.stats = s;
  // What this player received, for the operators' dashboards (frames per second, freezes).
  if (!reported || s.framesDecoded < reported.framesDecoded) reported = s;
  else if (s.at - reported.at >= REPORT_INTERVAL_MS) {
    const r = viewerReport(reported, s);
    if (r && control.report(r)) reported = s;
  }
});

const control = new GameControl({
  onChange: () => renderGamePanel(),
  onNews: (msg) => onNews(msg),
  onReply: (reply, command) => {
    const entry = { ...reply, command: command.t };
    state.gameReply = entry;
    state.gameReplies.push(entry);
    if (state.gameReplies.length > 100) state.gameReplies.shift();
  },
});

const pad = new PadInput({
  active: () => state.phase === 'playing',
  onButton: (name, down) => {
    for (const el of document.querySelectorAll(`[data-button="${name}"]`)) el.classList.toggle('held', down);
  },
});

window.retrofarm = {
  state,
  stats: emptyStats(),
  /** Sends raw text on the WebSocket (tests check the server's answer to malformed input). */
  sendRaw: (text) => signaling?.sendRaw(text) ?? false,
  /** Samples getStats() now and returns the summary. */
  pollStats: () => stats.sample(),
  /** Packets sent on the input channel so far. */
  inputSent: () => pad.sent,
  /** The input state last sent: `{buttons, axes, pointer}`. */
  inputLast: () => pad.last,
  /** Sends a game command on the control channel; resolves with its answer `{t, p}`. */
  gameCommand: (t, p) => control.send(t, p),
};

// ---- UI ------------------------------------------------------------------------------

function setStatus(text) {
  $('status').textContent = text;
}

function showError(code, serverMessage) {
  const info = describeError(code);
  state.error = code;
  state.errorMessage = serverMessage ?? null;
  state.errors.push(code);
  const box = $('error');
  box.dataset.code = code;
  $('error-text').textContent = info.text;
  $('error-detail').textContent = serverMessage ? `Details: ${serverMessage}` : '';
  $('error-retry').hidden = info.next !== 'retry';
  $('error-reload').hidden = info.next !== 'reload';
  box.hidden = false;
  return info;
}

function clearError() {
  state.error = null;
  state.errorMessage = null;
  const box = $('error');
  box.hidden = true;
  delete box.dataset.code;
}

function setPhase(phase) {
  state.phase = phase;
  render();
}

function render() {
  const { phase } = state;
  const inLobby = phase === 'choosing' || phase === 'starting';
  const playing = phase === 'playing';
  $('lobby').hidden = !inLobby;
  $('player').hidden = !playing;
  for (const b of document.querySelectorAll('#games button, #join')) b.disabled = phase !== 'choosing';
  $('games-filter').disabled = phase !== 'choosing';
  $('settings-fullscreen').disabled = !playing;
  $('port').disabled = phase !== 'choosing';
  $('port').value = String(state.port);
  if (state.worker) {
    $('worker-id').textContent = state.worker.id;
    $('worker-zone').textContent = state.worker.zone;
    const ms = state.latency?.[state.worker.id];
    $('worker-latency').textContent = ms === undefined ? '' : `(ping ${ms} ms)`;
  }
  const joining = !!state.room && inLobby;
  $('join-room').hidden = !joining;
  $('games').hidden = joining;
  $('join-room-id').textContent = state.room ?? '';
  $('lobby-title').textContent = joining ? 'Join a game' : 'Choose a game';
  $('share').hidden = !(playing && state.shareLink);
  $('share-link').value = state.shareLink ?? '';
  const as = state.port === 0 ? 'watching' : `port ${state.port}`;
  $('now-playing').textContent = playing ? `${state.game ?? ''} · room ${state.room} · ${as}` : '';
  $('unmute').hidden = !(playing && state.audioBlocked);
  renderGamePanel();
  // The lobby just showed: the keyboard (and a gamepad) starts on the first game.
  const choosing = phase === 'choosing';
  if (choosing && !lobbyFocused) focusLobby();
  lobbyFocused = choosing;
  if (choosing) lobbyPad.start();
}

/** The Game panel: slot list with save times, buttons usable while the control channel is open. */
function renderGamePanel() {
  state.control = control.state;
  state.gameCommand = control.busy;
  const ready = control.ready;
  for (const id of ['save', 'load', 'reset', 'reset-yes', 'play-port']) $(id).disabled = !ready;
  $('play-port').value = String(state.port);
  // A spectator cannot change the game for the players.
  for (const id of ['load', 'reset']) $(id).disabled ||= state.port === 0;
  $('game-panel').setAttribute('aria-busy', String(!!control.busy));
  const select = $('slot');
  select.value = String(state.slot);
  const now = new Date();
  for (const option of select.options) {
    const n = Number(option.value);
    const saved = state.slots?.find((s) => s.slot === n);
    let text = String(n);
    if (saved) text += ` · saved ${formatSavedAt(saved.saved_ms, now)}`;
    else if (state.slots) text += ' · empty';
    if (option.textContent !== text) option.textContent = text;
  }
}

// ---- game list (keyboard and gamepad navigation: js/lobby.js) -----------------------------

/** Whether the lobby was showing at the last render (to focus it once when it shows). */
let lobbyFocused = false;

/** The game the list's roving tabindex is on (its name), or null for the first one. */
let currentGame = null;

function renderGames(games) {
  const list = $('games');
  list.replaceChildren();
  for (const g of sortGames(games)) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.game = g.name;
    b.tabIndex = -1;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = g.name;
    const sys = document.createElement('span');
    sys.className = 'system';
    sys.textContent = g.system;
    b.append(name, sys);
    b.addEventListener('click', () => startGame(g.name));
    li.append(b);
    list.append(li);
  }
  $('games-filter-row').hidden = games.length <= FILTER_MIN_GAMES;
  applyGameFilter();
}

/** The game buttons the filter shows, in order. */
function visibleGames() {
  return [...document.querySelectorAll('#games li:not([hidden]) button')];
}

/** Shows the games that match the filter box; the roving tabindex stays on a shown game. */
function applyGameFilter() {
  const query = $('games-filter-row').hidden ? '' : $('games-filter').value;
  const shown = new Set(filterGames(state.games, query).map((g) => g.name));
  for (const b of document.querySelectorAll('#games button')) b.closest('li').hidden = !shown.has(b.dataset.game);
  $('games-none').hidden = shown.size > 0 || state.games.length === 0;
  setCurrentGame(currentGame);
}

/** Makes `name`'s button (or the first shown one) the list's only tab stop; returns it. */
function setCurrentGame(name) {
  const buttons = visibleGames();
  const current = buttons.find((b) => b.dataset.game === name) ?? buttons[0] ?? null;
  currentGame = current?.dataset.game ?? null;
  for (const b of document.querySelectorAll('#games button')) b.tabIndex = b === current ? 0 : -1;
  return current;
}

/** How many games fit on a row of the wrapped list as laid out now. */
function gameColumns(buttons) {
  if (buttons.length === 0) return 1;
  const top = buttons[0].getBoundingClientRect().top;
  const n = buttons.filter((b) => Math.abs(b.getBoundingClientRect().top - top) < 2).length;
  return Math.max(1, n);
}

/** Moves the focus to the game at `index` of the shown ones. */
function focusGame(index) {
  const b = setCurrentGame(visibleGames()[index]?.dataset.game ?? currentGame);
  b?.focus();
}

/** Gives the lobby the keyboard: the current (first) game, or the Join button for a share link. */
function focusLobby() {
  // The player is busy in the settings panel (or typing in the filter): leave the focus there.
  if ($('settings').contains(document.activeElement) || document.activeElement === $('games-filter')) return;
  if (!$('join-room').hidden) $('join').focus();
  else setCurrentGame(currentGame)?.focus();
}

function onGamesKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const buttons = visibleGames();
  const index = buttons.indexOf(document.activeElement);
  if (index < 0) return;
  const columns = gameColumns(buttons);
  const next = moveIndex(e.key, index, buttons.length, columns);
  if (next !== null) {
    e.preventDefault();
    // Up from the first row goes back to the filter box when there is one.
    if (e.key === 'ArrowUp' && next === index && !$('games-filter-row').hidden) $('games-filter').focus();
    else focusGame(next);
    return;
  }
  if (e.key.length === 1 && e.key !== ' ') {
    const j = letterIndex(buttons.map((b) => b.dataset.game), index, e.key);
    if (j >= 0) {
      e.preventDefault();
      focusGame(j);
    }
  }
}

/** Polls gamepads while the lobby shows: d-pad / left stick move the focus, button 0 starts. */
const lobbyPad = {
  nav: new PadNavigator(),
  running: false,
  start() {
    if (this.running || !navigator.getGamepads) return;
    if (!(navigator.getGamepads() ?? []).some(Boolean)) return;
    this.running = true;
    this.nav.reset();
    const tick = () => {
      if (state.phase !== 'choosing') {
        this.running = false;
        return;
      }
      const pads = (navigator.getGamepads?.() ?? []).filter(Boolean);
      const padNow = pads.find((p) => p.mapping === 'standard') ?? pads[0] ?? null;
      // A rebind in the settings panel takes the gamepad's buttons for itself.
      const actions = capture ? [] : this.nav.step(padNow, performance.now());
      for (const a of actions) lobbyPadAction(a);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  },
};

function lobbyPadAction(action) {
  if (!$('join-room').hidden) {
    if (action === 'start') $('join').click();
    else $('join').focus();
    return;
  }
  const buttons = visibleGames();
  const index = buttons.indexOf(document.activeElement);
  if (action === 'start') {
    (index >= 0 ? buttons[index] : setCurrentGame(currentGame))?.click();
    return;
  }
  // The first press only brings the focus to the list.
  if (index < 0) {
    setCurrentGame(currentGame)?.focus();
    return;
  }
  const key = { up: 'ArrowUp', down: 'ArrowDown', left: 'ArrowLeft', right: 'ArrowRight' }[action];
  focusGame(moveIndex(key, index, buttons.length, gameColumns(buttons)));
}

/** Keys of the Game panel (not pad buttons: input.js leaves them alone). */
const GAME_KEYS = Object.freeze([
  { code: 'F2', keys: 'F2', label: 'Save to the selected slot' },
  { code: 'F4', keys: 'F4', label: 'Load the selected slot' },
]);

/** The Controls section's table: the keys as bound now, then the page's own keys. */
function renderKeymap() {
  const body = $('keymap').tBodies[0];
  body.replaceChildren();
  const rows = PAD_BUTTONS.filter((b) => bindings.keys[b].length > 0).map((b) => ({
    button: b,
    keys: keysLabel(bindings.keys[b]).join(' / '),
    label: BUTTON_LABELS[b],
  }));
  const gameKeys = buttonForCode(bindings, FULLSCREEN_CODE)
    ? GAME_KEYS
    : [...GAME_KEYS, { code: FULLSCREEN_CODE, keys: 'F', label: 'Full screen on or off' }];
  for (const k of [...rows, ...gameKeys]) {
    const tr = document.createElement('tr');
    if (k.button) tr.dataset.button = k.button;
    const key = document.createElement('td');
    const kbd = document.createElement('kbd');
    kbd.textContent = k.keys;
    key.append(kbd);
    const btn = document.createElement('td');
    btn.textContent = k.label;
    tr.append(key, btn);
    body.append(tr);
  }
}

// ---- settings: volume, full screen, control bindings (js/controls.js) -------------------

/** The player's bindings (stored in localStorage; the defaults when none are). */
let bindings = loadBindings();
pad.setBindings(keyLookup(bindings), padLookup(bindings));
window.retrofarm.bindings = () => JSON.parse(JSON.stringify(bindings));

/** The rebind in progress: `{button, held}` (held: gamepad buttons down when it began), or null. */
let capture = null;

function openSettings(open) {
  if (!open) cancelCapture();
  $('settings').hidden = !open;
  $('settings-toggle').setAttribute('aria-expanded', String(open));
  if (open) $('settings-title').focus();
}

/** Uses, keeps and shows `next` as the bindings. */
function setBindings(next) {
  bindings = next;
  pad.setBindings(keyLookup(bindings), padLookup(bindings));
  storeBindings(bindings);
  renderBindings();
  renderKeymap();
}

/** The settings panel's table: each button, its keys and gamepad button, and a Change button. */
function renderBindings() {
  const body = $('bindings').tBodies[0];
  const hadFocus = body.contains(document.activeElement) ? document.activeElement.dataset.rebind : null;
  body.replaceChildren();
  for (const name of PAD_BUTTONS) {
    const tr = document.createElement('tr');
    tr.dataset.binding = name;
    tr.classList.toggle('capturing', capture?.button === name);
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = BUTTON_LABELS[name];
    const keys = document.createElement('td');
    keys.className = 'keys';
    const labels = keysLabel(bindings.keys[name]);
    if (labels.length === 0) keys.textContent = 'none';
    for (const [i, l] of labels.entries()) {
      if (i > 0) keys.append(' / ');
      const kbd = document.createElement('kbd');
      kbd.textContent = l;
      keys.append(kbd);
    }
    const padCell = document.createElement('td');
    padCell.className = 'pad';
    padCell.textContent = padLabel(bindings.pad[name]);
    const change = document.createElement('td');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.rebind = name;
    b.textContent = capture?.button === name ? 'Press a key…' : 'Change';
    b.setAttribute('aria-label', `Change ${BUTTON_LABELS[name]}`);
    b.setAttribute('aria-pressed', String(capture?.button === name));
    b.addEventListener('click', () => (capture?.button === name ? cancelCapture() : startCapture(name)));
    change.append(b);
    tr.append(th, keys, padCell, change);
    body.append(tr);
  }
  if (hadFocus) body.querySelector(`[data-rebind="${hadFocus}"]`)?.focus();
}

function pressedPadButtons() {
  const pads = (navigator.getGamepads?.() ?? []).filter(Boolean);
  const held = new Set();
  for (const p of pads) p.buttons.forEach((b, i) => (b.pressed || b.value > 0.5) && held.add(i));
  return held;
}

/** Waits for the key or gamepad button that `name` gets (Escape cancels). */
function startCapture(name) {
  cancelCapture();
  capture = { button: name, held: pressedPadButtons() };
  window.addEventListener('keydown', onCaptureKey, true);
  $('rebind-status').textContent = `Press a key or a gamepad button for ${BUTTON_LABELS[name]} (Escape cancels).`;
  renderBindings();
  const c = capture;
  const poll = () => {
    if (capture !== c) return;
    const now = pressedPadButtons();
    // A button held when the rebind began counts once it is let go and pressed again.
    for (const i of c.held) if (!now.has(i)) c.held.delete(i);
    const index = [...now].find((i) => !c.held.has(i));
    if (index !== undefined) {
      endCapture(`${BUTTON_LABELS[name]} is now gamepad ${padLabel(index)}.`);
      setBindings(rebindPad(bindings, name, index));
      return;
    }
    requestAnimationFrame(poll);
  };
  if (navigator.getGamepads) requestAnimationFrame(poll);
}

function endCapture(message) {
  if (!capture) return;
  capture = null;
  window.removeEventListener('keydown', onCaptureKey, true);
  $('rebind-status').textContent = message;
  renderBindings();
}

function cancelCapture() {
  if (capture) endCapture(`Unchanged: ${BUTTON_LABELS[capture.button]} keeps its keys.`);
}

function onCaptureKey(e) {
  if (!capture) return;
  // Tab keeps moving the focus (and ends the rebind): the keyboard never gets stuck here.
  if (e.code === 'Tab' || e.key === 'Tab') {
    cancelCapture();
    return;
  }
  // The key is the rebind's alone: not the game's, not the page's, not a click.
  e.preventDefault();
  e.stopPropagation();
  if (e.repeat) return;
  const name = capture.button;
  if (e.code === 'Escape') {
    cancelCapture();
    return;
  }
  if (!bindableCode(e.code)) {
    $('rebind-status').textContent = `${e.code || e.key} is kept for the page or the browser: choose another key (Escape cancels).`;
    return;
  }
  endCapture(`${BUTTON_LABELS[name]} is now the ${keyLabel(e.code)} key.`);
  setBindings(rebindKey(bindings, name, e.code));
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen?.().catch(() => {});
  else $('screen').requestFullscreen?.().catch((err) => console.warn('fullscreen: refused', err));
}

/** Applies (and shows) a volume of 0..1 to the game's sound. */
function setVolume(v, keep) {
  $('audio').volume = v;
  $('volume').value = String(Math.round(v * 100));
  $('volume-value').textContent = `${Math.round(v * 100)}%`;
  if (keep) writeStorage(VOLUME_KEY, String(v));
}

function wireSettings() {
  $('settings-toggle').addEventListener('click', () => openSettings($('settings').hidden));
  $('settings-close').addEventListener('click', () => {
    openSettings(false);
    $('settings-toggle').focus();
  });
  $('settings').addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || capture) return;
    e.preventDefault();
    openSettings(false);
    $('settings-toggle').focus();
  });
  setVolume(parseVolume(readStorage(VOLUME_KEY)), false);
  $('volume').addEventListener('input', () => setVolume(Number($('volume').value) / 100, true));
  $('settings-fullscreen').addEventListener('click', toggleFullscreen);
  $('bindings-reset').addEventListener('click', () => {
    cancelCapture();
    setBindings(defaultBindings());
    $('rebind-status').textContent = 'Controls reset to the defaults.';
  });
  renderBindings();
}

// ---- picture shape (the worker's `screen` news: js/screen.js) ---------------------------

/** A message the worker sent of its own accord on the control channel. */
function onNews(msg) {
  if (msg.t !== 'screen') return;
  const shape = parseScreen(msg.p);
  if (!shape) {
    console.warn('control: ignoring a malformed screen message', msg);
    return;
  }
  state.screen = shape;
  applyScreen();
}

/** Shows the video at state.screen's shape (or, with none, at its own pixel shape). */
function applyScreen() {
  const screen = $('screen');
  const v = $('video');
  if (!state.screen) {
    screen.classList.remove('shaped');
    screen.style.removeProperty('--shown');
    for (const p of ['width', 'height', 'transform']) v.style.removeProperty(p);
    delete screen.dataset.rotation;
    return;
  }
  screen.classList.add('shaped');
  screen.style.setProperty('--shown', String(shownAspect(state.screen)));
  screen.dataset.rotation = String(state.screen.rotation);
  layoutVideo();
}

/** Sizes and turns the video to fill the largest box of the core's shape in the screen area. */
function layoutVideo() {
  if (!state.screen) return;
  const screen = $('screen');
  const width = screen.clientWidth;
  const height = screen.clientHeight;
  if (!width || !height) return;
  const fit = fitScreen(state.screen, width, height);
  const v = $('video');
  v.style.width = `${fit.elementWidth}px`;
  v.style.height = `${fit.elementHeight}px`;
  v.style.transform = fit.transform;
}

// ---- the pointer on the picture (a touch screen: js/screen.js pointerOnPicture) ----------

/** Where a pointer event is on the game's picture, or null off it (or with no game on). */
function pointerAt(e) {
  const v = $('video');
  if (state.phase !== 'playing' || !v.videoWidth) return null;
  // Shaped, the element is the picture (its bounding box turned with it); else the picture is
  // contained in the element at its own pixel shape.
  const aspect = state.screen ? shownAspect(state.screen) : v.videoWidth / v.videoHeight;
  const box = containedBox(v.getBoundingClientRect(), aspect);
  return pointerOnPicture(box, state.screen?.rotation ?? 0, e.clientX, e.clientY);
}

function onPointer(e) {
  const at = pointerAt(e);
  // A mouse presses with its main button; a finger or a pen while it touches.
  const pressed = e.type !== 'pointerup' && e.type !== 'pointercancel' && (e.buttons & 1) === 1;
  pad.setPointer(at && { ...at, pressed });
  if (e.type === 'pointerdown' && at) {
    e.preventDefault();
    $('video').setPointerCapture?.(e.pointerId);
  }
}

for (const type of ['pointerdown', 'pointermove', 'pointerup', 'pointercancel']) {
  $('video').addEventListener(type, onPointer);
}
$('video').addEventListener('pointerleave', () => pad.setPointer(null));

// ---- session -------------------------------------------------------------------------

function connect() {
  signaling?.close();
  setPhase('connecting');
  setStatus('Connecting…');
  openSignaling();
}

/** Delay before the next signaling reconnection while a game plays on (doubles up to 10 s). */
let reconnectDelayMs = 1000;

function openSignaling() {
  const url = signalingUrl(location, { room: state.room, zone });
  const s = new Signaling(url, {
    onOpen: () => {
      if (s !== signaling) return;
      // A reconnection while playing is `open` once the coordinator has a server for us (init).
      if (state.signaling !== 'reconnecting') state.signaling = 'open';
    },
    onMessage: (t, p) => {
      if (s === signaling) handle(t, p ?? {});
    },
    onClose: (_e, byUs) => {
      if (s !== signaling || byUs) return;
      if (state.phase === 'playing' && peer) {
        // The game streams straight from its server: play on, and reconnect in the background.
        reconnectLater();
        return;
      }
      state.signaling = 'closed';
      endGame();
      setPhase('closed');
      setStatus('Disconnected.');
      showError('connection_lost');
    },
  });
  signaling = s;
}

/** Reopens signaling after a backoff while the game plays on without it. */
function reconnectLater() {
  const s = signaling;
  state.signaling = 'reconnecting';
  // The coordinator forgets the closed session; the next init brings the new one.
  state.session = null;
  setStatus(`Playing ${state.game ?? 'the game'} as player ${state.port}. Reconnecting to retrofarm…`);
  const delay = reconnectDelayMs;
  reconnectDelayMs = Math.min(reconnectDelayMs * 2, 10_000);
  setTimeout(() => {
    if (s === signaling && state.phase === 'playing') openSignaling();
  }, delay);
}

function send(type, payload) {
  if (!signaling?.send(type, payload)) console.warn(`signaling: ${type} not sent (connection closed)`);
}

async function handle(type, p) {
  switch (type) {
    case FROM_SERVER.CHECK_LATENCY:
      return checkLatency(p.workers ?? []);
    case FROM_SERVER.INIT:
      return onInit(p);
    case FROM_SERVER.GAME_STARTED:
      return onGameStarted(p);
    case FROM_SERVER.OFFER:
      return onOffer(p.sdp);
    case FROM_SERVER.ICE:
      return peer?.addRemoteCandidate(p.candidate ?? null);
    case FROM_SERVER.ERROR:
      return onServerError(p.code ?? 'internal', p.message);
    default:
      console.warn(`signaling: ignoring unknown message type ${type}`);
  }
}

async function checkLatency(workers) {
  // A reconnection while a game plays: answer without leaving the game.
  if (state.phase !== 'playing') {
    setPhase('checking');
    setStatus(`Finding the fastest server (${workers.length} to check)…`);
  }
  const results = await measureLatency(workers);
  state.latency = results;
  send(TO_SERVER.LATENCY, { results });
}

function onInit(p) {
  state.session = p.session ?? null;
  state.worker = p.worker ?? null;
  state.games = p.games ?? [];
  iceServers = p.ice_servers ?? [];
  if (state.phase === 'playing') {
    // Signaling is back after a reconnection; the game never stopped.
    state.signaling = 'open';
    reconnectDelayMs = 1000;
    setStatus(`Playing ${state.game ?? 'the game'} as player ${state.port}.`);
    return;
  }
  if (p.room) state.room = p.room;
  renderGames(state.games);
  setPhase('choosing');
  // A share link's room may have ended: joining then resumes it from its autosave.
  setStatus(state.room ? `Ready to join (or resume) room ${state.room}.` : 'Ready: choose a game.');
  // This page was playing this room before a reload: straight back in, on the same port.
  if (state.room && state.room === shareRoom && rejoinPort !== null && !rejoined) {
    rejoined = true;
    startGame(null);
  }
}

/** Whether the reload's automatic rejoin was tried (once: a failure leaves the player to choose). */
let rejoined = false;

function startGame(game) {
  if (state.phase !== 'choosing') return;
  clearError();
  state.port = Number($('port').value);
  // Watching (port 0) is for joining a room; a new game is played.
  if (!(state.port >= 1 && state.port <= 4) && !(state.port === 0 && state.room)) state.port = 1;
  state.game = state.room ? null : game;
  const payload = state.room ? { room: state.room, port: state.port } : { game, port: state.port };
  send(TO_SERVER.START_GAME, payload);
  setPhase('starting');
  setStatus(state.room ? `Joining room ${state.room}…` : `Starting ${game}…`);
}

function onGameStarted(p) {
  state.gameSession = state.session;
  state.room = p.room;
  state.game = p.game ?? state.game;
  state.port = p.port ?? state.port;
  state.shareLink = `${location.origin}/?id=${encodeURIComponent(p.room)}`;
  // A reload comes back here (the share link above has no port: a friend picks theirs).
  const here = new URLSearchParams(location.search);
  here.set('id', p.room);
  here.set('port', String(state.port));
  history.replaceState(null, '', `${location.pathname}?${here}`);
  setPhase('playing');
  setStatus(`Playing ${state.game} as player ${state.port}. Connecting the stream…`);
  $('screen').focus({ preventScroll: true });
}

async function onOffer(sdp) {
  endPeer();
  const p = new GamePeer({
    iceServers,
    codec,
    onLocalCandidate: (candidate) => send(TO_SERVER.ICE, { candidate }),
    onTrack: attachTrack,
    onConnectionState: (s) => onConnectionState(p, s),
    onInputChannel: (ch) => onInputChannel(p, ch),
    onControlChannel: (ch) => onControlChannel(p, ch),
  });
  peer = p;
  state.rtc = p.connectionState;
  try {
    const answer = await p.answer(sdp);
    if (peer !== p) return;
    state.videoCodecs = sdpCodecs(answer, 'video');
    send(TO_SERVER.ANSWER, { sdp: answer });
    stats.start(p);
  } catch (err) {
    console.error('rtc: could not answer the offer', err);
    if (peer !== p) return;
    showError('media_failed', String(err?.message ?? err));
    quit();
  }
}

function onConnectionState(p, s) {
  if (peer !== p) return;
  state.rtc = s;
  if (s === 'connected') setStatus(`Playing ${state.game ?? ''} as player ${state.port}.`);
  if (s === 'failed') {
    showError('media_failed');
    quit();
  }
}

function onInputChannel(p, ch) {
  if (peer !== p) return;
  state.input = ch.readyState;
  state.inputChannel = { ordered: ch.ordered, maxRetransmits: ch.maxRetransmits, maxPacketLifeTime: ch.maxPacketLifeTime };
  const update = () => {
    if (peer === p) state.input = ch.readyState;
  };
  ch.addEventListener('open', update);
  ch.addEventListener('close', update);
  pad.attach(ch);
}

function onControlChannel(p, ch) {
  if (peer !== p) return;
  control.attach(ch);
  // The panel is usable from now on: show which slots hold a save.
  if (ch.readyState === 'open') refreshSlots();
  else ch.addEventListener('open', () => peer === p && refreshSlots(), { once: true });
}

// ---- game commands (Game panel, F2/F4) ---------------------------------------------------

/** How often, and how long apart, a `slots` the worker refused is asked again. */
const SLOTS_RETRIES = 5;
const SLOTS_RETRY_MS = 1000;

/**
 * Asks the worker which of this player's slots hold a save for this game. The channel may open
 * before the room's game runs ("the game is still starting"): a refusal is retried a few times.
 */
async function refreshSlots(attempt = 0) {
  const p = peer;
  const reply = await control.slots(state.user);
  if (peer !== p) return;
  if (reply.t === 'slots') {
    state.slots = (reply.p?.slots ?? []).filter((s) => s.slot >= 1 && s.slot <= SLOTS);
  } else {
    console.warn(`control: the save slots are unknown: ${reply.p?.message}`);
    if (!reply.local && attempt < SLOTS_RETRIES) {
      setTimeout(() => peer === p && control.ready && refreshSlots(attempt + 1), SLOTS_RETRY_MS);
    }
  }
  renderGamePanel();
}

/** Runs a save, load or reset and tells the player how it went. */
async function gameCommand(t, slot) {
  const p = peer;
  const what = { save: `Saving to slot ${slot}…`, load: `Loading slot ${slot}…`, reset: 'Resetting the game…' }[t];
  setStatus(what);
  const reply =
    t === 'save' ? await control.save(state.user, slot)
      : t === 'load' ? await control.load(state.user, slot)
        : await control.reset();
  // The game ended meanwhile: nothing to tell on this screen.
  if (peer !== p || state.phase !== 'playing') return;
  if (reply.t === 'failed') {
    const message = reply.p?.message ?? 'no reason given';
    const failed = { save: `Saving to slot ${slot} failed`, load: `Loading slot ${slot} failed`, reset: 'Reset failed' }[t];
    setStatus(`${failed}: ${message}`);
    showError(COMMAND_ERRORS[t], message);
    return;
  }
  if (Object.values(COMMAND_ERRORS).includes(state.error)) clearError();
  const n = reply.p?.slot ?? slot;
  setStatus({ saved: `Saved to slot ${n}`, loaded: `Loaded slot ${n}`, reset: 'Game reset' }[reply.t] ?? `Done: ${reply.t}`);
  if (reply.t === 'saved') refreshSlots();
}

/** Moves this player to another port of the room (0: watching) and tells how it went. */
async function switchPort(port) {
  const p = peer;
  setStatus(port === 0 ? 'Switching to watching…' : `Switching to player ${port}…`);
  const reply = await control.send('port', { port });
  if (peer !== p || state.phase !== 'playing') return;
  if (reply.t === 'failed') {
    const message = reply.p?.message ?? 'no reason given';
    setStatus(`Switching failed: ${message}`);
    showError(COMMAND_ERRORS.port, message);
  } else {
    if (Object.values(COMMAND_ERRORS).includes(state.error)) clearError();
    state.port = reply.p?.port ?? port;
    pad.releaseAll();
    // A reload comes back on the new port.
    const here = new URLSearchParams(location.search);
    here.set('port', String(state.port));
    history.replaceState(null, '', `${location.pathname}?${here}`);
    setStatus(state.port === 0 ? 'Now watching.' : `Now playing as player ${state.port}.`);
  }
  render();
}

function saveSlot() {
  return gameCommand('save', state.slot);
}

function loadSlot() {
  return gameCommand('load', state.slot);
}

/** Shows or hides Reset's confirmation step (a reset changes the game for the whole room). */
function askReset(open) {
  $('reset-confirm').hidden = !open;
  $('reset').setAttribute('aria-expanded', String(open));
  if (open) $('reset-no').focus();
}

/**
 * After a click with the mouse (or a tap), the keyboard goes back to the game; a button pressed
 * from the keyboard keeps the focus.
 */
function backToGame(e, fallback) {
  if (e?.detail > 0) $('screen').focus({ preventScroll: true });
  else fallback?.focus();
}

function onGameKey(e) {
  if (e.code === FULLSCREEN_CODE) return onFullscreenKey(e);
  if (e.code !== 'F2' && e.code !== 'F4') return;
  // Alt+F4 and other combinations belong to the browser and the system.
  if (state.phase !== 'playing' || e.ctrlKey || e.metaKey || e.altKey || e.shiftKey) return;
  e.preventDefault();
  if (e.repeat) return;
  if (e.code === 'F2') saveSlot();
  else loadSlot();
}

/** F toggles full screen while playing, unless it is a pad button or the player is typing. */
function onFullscreenKey(e) {
  if (state.phase !== 'playing' || e.ctrlKey || e.metaKey || e.altKey || e.shiftKey) return;
  if (buttonForCode(bindings, e.code) || e.target?.closest?.('input, textarea, select, [contenteditable]')) return;
  e.preventDefault();
  if (!e.repeat) toggleFullscreen();
}

function attachTrack(track) {
  const el = track.kind === 'video' ? $('video') : $('audio');
  el.srcObject = new MediaStream([track]);
  const played = el.play();
  if (track.kind === 'audio') {
    played
      ?.then(() => {
        state.audioBlocked = false;
        render();
      })
      .catch((err) => {
        // Autoplay with sound needs a user gesture: offer one.
        if (err?.name === 'NotAllowedError') {
          state.audioBlocked = true;
          render();
        }
      });
  } else {
    played?.catch(() => {}); // muted video may always autoplay
  }
}

function unmute() {
  $('audio')
    .play()
    .then(() => {
      state.audioBlocked = false;
      render();
    })
    .catch((err) => console.warn('audio: still blocked', err));
}

/** Codes that report a bug in this page; they never end the session. */
const PROTOCOL_BUGS = new Set(['malformed', 'too_large', 'unknown_type', 'bad_state']);

function onServerError(code, message) {
  // A session reopened while a game plays is not the game's: an error there (the new
  // coordinator has no server registered yet: `no_free_worker`) concerns only the lobby.
  // The game plays on; signaling tries again until the coordinator knows a server.
  if (state.phase === 'playing' && state.gameSession !== state.session) {
    console.warn(`signaling: ${code} while reconnecting (${message}); the game plays on`);
    signaling?.close();
    reconnectLater();
    return;
  }
  if (PROTOCOL_BUGS.has(code)) console.error(`signaling: server reported ${code}: ${message}`);
  // A message already in flight when a session ended (say, a trickled candidate after
  // room_closed) earns a bad_state: keep the error that explains what happened on screen.
  if (PROTOCOL_BUGS.has(code) && state.error && !PROTOCOL_BUGS.has(state.error)) {
    state.errors.push(code);
    return;
  }
  const info = showError(code, message);
  switch (info.next) {
    case 'retry':
    case 'reload':
      endGame();
      if (state.phase !== 'closed') setPhase(info.next === 'retry' ? 'unavailable' : 'lost');
      setStatus(info.next === 'retry' ? 'No server available.' : 'Disconnected from the game server.');
      break;
    case 'games':
      endGame();
      if (code === 'room_closed') {
        state.room = null;
        forgetRoomInUrl();
      }
      if (state.worker) setPhase('choosing');
      break;
    case 'port':
      endGame();
      setPhase('choosing');
      $('port').focus();
      break;
    default:
      if (code === 'unknown_room') {
        // The share link's room has ended and has no save to resume it from (the coordinator
        // says so when the player joins): this page offers its own games instead.
        state.room = null;
        state.port = 1;
        forgetRoomInUrl();
      }
      if (state.phase === 'starting') setPhase('choosing');
      else render();
      if (code === 'unknown_room' && state.phase === 'choosing') setStatus('Ready: choose a game.');
  }
}

function endPeer() {
  stats.stop();
  pad.detach();
  pad.releaseAll();
  control.detach('The game ended before the server answered.');
  state.slots = null;
  state.screen = null;
  applyScreen();
  askReset(false);
  peer?.close();
  peer = null;
  state.rtc = 'none';
  state.input = 'none';
  $('video').srcObject = null;
  $('audio').srcObject = null;
}

function endGame() {
  endPeer();
  state.shareLink = null;
  state.audioBlocked = false;
}

/** Takes the room out of the page's address: a reload then starts in the lobby. */
function forgetRoomInUrl() {
  const here = new URLSearchParams(location.search);
  if (!here.has('id') && !here.has('port')) return;
  here.delete('id');
  here.delete('port');
  const query = here.toString();
  history.replaceState(null, '', query ? `${location.pathname}?${query}` : location.pathname);
}

function quit() {
  // After a signaling reconnection the coordinator does not know the game's session: closing
  // the stream (endGame) is what tells its server then.
  const known = state.phase === 'starting' || (state.phase === 'playing' && state.gameSession === state.session);
  if (known) send(TO_SERVER.QUIT);
  forgetRoomInUrl();
  endGame();
  // A share-link player who quits starts over in the lobby with their own games.
  if (state.phase !== 'closed') setPhase(state.worker ? 'choosing' : state.phase);
  if (state.phase === 'choosing') setStatus('Ready: choose a game.');
}

async function copyShareLink() {
  const input = $('share-link');
  const button = $('copy');
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    document.execCommand?.('copy');
  }
  button.textContent = 'Copied!';
  setTimeout(() => (button.textContent = 'Copy link'), 2000);
}

// ---- start -----------------------------------------------------------------------------

function wireUi() {
  renderKeymap();
  $('port').addEventListener('change', () => (state.port = Number($('port').value)));
  $('play-port').addEventListener('change', () => switchPort(Number($('play-port').value)));
  $('join').addEventListener('click', () => startGame(null));
  $('quit').addEventListener('click', () => {
    // Quitting leaves the room; the game list is what comes next, not the share link.
    quit();
    state.room = null;
    render();
  });
  $('copy').addEventListener('click', copyShareLink);
  $('unmute').addEventListener('click', unmute);
  $('stats-toggle').addEventListener('click', () => {
    const on = $('stats').hidden;
    $('stats').hidden = !on;
    $('stats-toggle').setAttribute('aria-pressed', String(on));
  });
  $('fullscreen').addEventListener('click', toggleFullscreen);
  $('slot').addEventListener('change', () => {
    state.slot = Number($('slot').value) || 1;
  });
  $('save').addEventListener('click', (e) => {
    saveSlot();
    backToGame(e);
  });
  $('load').addEventListener('click', (e) => {
    loadSlot();
    backToGame(e);
  });
  $('reset').addEventListener('click', () => askReset($('reset-confirm').hidden));
  $('reset-no').addEventListener('click', (e) => {
    askReset(false);
    backToGame(e, $('reset'));
  });
  $('reset-yes').addEventListener('click', (e) => {
    askReset(false);
    gameCommand('reset');
    backToGame(e, $('reset'));
  });
  $('reset-confirm').addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    e.preventDefault();
    askReset(false);
    $('reset').focus();
  });
  window.addEventListener('keydown', onGameKey);
  $('error-dismiss').addEventListener('click', clearError);
  $('error-retry').addEventListener('click', () => {
    clearError();
    connect();
  });
  $('error-reload').addEventListener('click', () => location.reload());
  for (const b of document.querySelectorAll('#touchpad [data-button]')) {
    b.tabIndex = -1;
    const name = b.dataset.button;
    const down = (e) => {
      e.preventDefault();
      b.setPointerCapture?.(e.pointerId);
      pad.setTouch(name, true);
    };
    const up = () => pad.setTouch(name, false);
    b.addEventListener('pointerdown', down);
    b.addEventListener('pointerup', up);
    b.addEventListener('pointercancel', up);
    b.addEventListener('lostpointercapture', up);
    b.addEventListener('contextmenu', (e) => e.preventDefault());
  }
  for (const el of document.querySelectorAll('#touchpad [data-stick]')) wireStick(el);
  // The game list: arrows, Home/End, type-ahead (js/lobby.js); the filter box for long lists.
  $('games').addEventListener('keydown', onGamesKey);
  $('games').addEventListener('focusin', (e) => {
    const b = e.target.closest('button[data-game]');
    if (b) setCurrentGame(b.dataset.game);
  });
  $('games-filter').addEventListener('input', applyGameFilter);
  $('games-filter').addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowDown') return;
    e.preventDefault();
    focusGame(0);
  });
  window.addEventListener('gamepadconnected', () => state.phase === 'choosing' && lobbyPad.start());
  wireSettings();
  new ResizeObserver(layoutVideo).observe($('screen'));
  // The element takes the stream's shape (NES cores give 256×240, or 256×224 without overscan).
  $('video').addEventListener('resize', () => {
    const v = $('video');
    if (v.videoWidth && v.videoHeight) v.style.aspectRatio = `${v.videoWidth} / ${v.videoHeight}`;
  });
  // A click on the picture gives it the keyboard (and unblocks audio where needed).
  $('screen').addEventListener('click', () => {
    $('screen').focus({ preventScroll: true });
    if (state.audioBlocked) unmute();
  });
}

/** An on-screen analog stick: the touch's offset from its centre is the stick's position. */
function wireStick(el) {
  const stick = Number(el.dataset.stick);
  const knob = el.querySelector('.knob');
  let id = null;
  const move = (e) => {
    const r = el.getBoundingClientRect();
    const radius = r.width / 2;
    const v = stickVector(e.clientX - (r.left + radius), e.clientY - (r.top + r.height / 2), radius * 0.8);
    knob.style.setProperty('--kx', `${v.x * radius * 0.6}px`);
    knob.style.setProperty('--ky', `${v.y * radius * 0.6}px`);
    pad.setTouchStick(stick, v.x, v.y);
  };
  const release = () => {
    id = null;
    el.classList.remove('held');
    knob.style.removeProperty('--kx');
    knob.style.removeProperty('--ky');
    pad.setTouchStick(stick, 0, 0);
  };
  el.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    id = e.pointerId;
    el.setPointerCapture?.(e.pointerId);
    el.classList.add('held');
    move(e);
  });
  el.addEventListener('pointermove', (e) => e.pointerId === id && move(e));
  el.addEventListener('pointerup', release);
  el.addEventListener('pointercancel', release);
  el.addEventListener('lostpointercapture', release);
}

wireUi();
render();
connect();
