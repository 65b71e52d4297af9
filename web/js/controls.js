// The player's control bindings: which keyboard keys and which gamepad button press each RetroPad
// button. Kept in localStorage as versioned JSON; anything unreadable means the defaults. Pure
// functions (no DOM) so that tests/unit.test.mjs covers them; the settings panel is in app.js.

import { BUTTON, GAMEPAD_BUTTONS, KEYMAP } from './input.js';

/** localStorage key of the bindings. */
export const CONTROLS_KEY = 'retrofarm.controls';
/** Version of the stored JSON; another version is ignored (the defaults apply). */
export const CONTROLS_VERSION = 1;
/** The RetroPad buttons, in the order the settings panel lists them. */
export const PAD_BUTTONS = Object.freeze([
  'UP', 'DOWN', 'LEFT', 'RIGHT', 'A', 'B', 'X', 'Y', 'L', 'R', 'START', 'SELECT', 'L2', 'R2', 'L3', 'R3',
]);
/** Names shown to the player. */
export const BUTTON_LABELS = Object.freeze({
  UP: 'Up', DOWN: 'Down', LEFT: 'Left', RIGHT: 'Right', A: 'A', B: 'B', X: 'X', Y: 'Y', L: 'L', R: 'R',
  START: 'Start', SELECT: 'Select', L2: 'L2', R2: 'R2', L3: 'L3', R3: 'R3',
});
/** Most keys one button keeps (the defaults use two: both Enter keys, both Shift keys). */
export const MAX_KEYS = 4;
/** Gamepad button indices the bindings accept (the standard mapping has 17). */
export const MAX_PAD_BUTTON = 31;
/**
 * Keys that never become pad buttons: Escape cancels a rebind, Tab moves the focus, the function
 * keys belong to the page (F2 save, F4 load) and the browser (F5, F11, F12…), and the system's.
 */
export const RESERVED_CODES = Object.freeze(new Set([
  'Escape', 'Tab', 'MetaLeft', 'MetaRight', 'OSLeft', 'OSRight', 'ContextMenu', 'CapsLock', 'NumLock', 'ScrollLock',
  'PrintScreen', 'Pause', ...Array.from({ length: 24 }, (_, i) => `F${i + 1}`),
]));
/** The key that toggles full screen while playing, unless a pad button uses it. */
export const FULLSCREEN_CODE = 'KeyF';

const CODE_RE = /^[A-Za-z0-9]{1,32}$/;

/** The default bindings: KEYMAP's keys and the standard gamepad layout of input.js. */
export function defaultBindings() {
  const keys = Object.fromEntries(PAD_BUTTONS.map((b) => [b, []]));
  for (const k of KEYMAP) keys[k.button].push(...k.codes);
  const pad = Object.fromEntries(PAD_BUTTONS.map((b) => [b, null]));
  GAMEPAD_BUTTONS.forEach((id, index) => {
    const name = PAD_BUTTONS.find((b) => BUTTON[b] === id);
    if (pad[name] === null) pad[name] = index;
  });
  return { keys, pad };
}

/** Whether `code` (a KeyboardEvent.code) may be bound to a pad button. */
export function bindableCode(code) {
  return typeof code === 'string' && CODE_RE.test(code) && !RESERVED_CODES.has(code);
}

/**
 * Checks bindings `{keys, pad}`: every button present, keys are bindable codes (at most
 * MAX_KEYS, none used twice anywhere), gamepad buttons are integers 0..MAX_PAD_BUTTON or null
 * (none used twice). Returns a clean copy, or null when anything is wrong.
 */
export function validateBindings(b) {
  if (!b || typeof b !== 'object' || !b.keys || typeof b.keys !== 'object' || !b.pad || typeof b.pad !== 'object') {
    return null;
  }
  const keys = {};
  const pad = {};
  const seenCodes = new Set();
  const seenPad = new Set();
  for (const name of PAD_BUTTONS) {
    const codes = b.keys[name];
    if (!Array.isArray(codes) || codes.length > MAX_KEYS) return null;
    for (const c of codes) {
      if (!bindableCode(c) || seenCodes.has(c)) return null;
      seenCodes.add(c);
    }
    keys[name] = codes.slice();
    const index = b.pad[name];
    if (index !== null) {
      if (!Number.isInteger(index) || index < 0 || index > MAX_PAD_BUTTON || seenPad.has(index)) return null;
      seenPad.add(index);
    }
    pad[name] = index;
  }
  return { keys, pad };
}

/**
 * Reads the stored JSON text (`{"v": 1, "keys": {...}, "pad": {...}}`): the bindings it holds, or
 * the defaults when it is missing, unreadable, of another version or invalid.
 */
export function parseBindings(text) {
  if (typeof text !== 'string') return defaultBindings();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return defaultBindings();
  }
  if (!data || data.v !== CONTROLS_VERSION) return defaultBindings();
  return validateBindings(data) ?? defaultBindings();
}

/** The JSON text that stores `bindings`. */
export function serializeBindings(bindings) {
  return JSON.stringify({ v: CONTROLS_VERSION, keys: bindings.keys, pad: bindings.pad });
}

/**
 * `button` is pressed by key `code` from now on, and by that key only; the key leaves any other
 * button it pressed. Returns new bindings (the given ones are unchanged); a reserved code or an
 * unknown button changes nothing.
 */
export function rebindKey(bindings, button, code) {
  if (!PAD_BUTTONS.includes(button) || !bindableCode(code)) return bindings;
  const keys = {};
  for (const name of PAD_BUTTONS) keys[name] = name === button ? [code] : bindings.keys[name].filter((c) => c !== code);
  return { keys, pad: { ...bindings.pad } };
}

/**
 * `button` is pressed by gamepad button `index` from now on; another button that used `index`
 * loses it (it has no gamepad button until rebound). Returns new bindings.
 */
export function rebindPad(bindings, button, index) {
  if (!PAD_BUTTONS.includes(button) || !Number.isInteger(index) || index < 0 || index > MAX_PAD_BUTTON) return bindings;
  const pad = {};
  for (const name of PAD_BUTTONS) pad[name] = name === button ? index : bindings.pad[name] === index ? null : bindings.pad[name];
  return { keys: { ...bindings.keys }, pad };
}

/** KeyboardEvent.code → RetroPad button id, for PadInput. */
export function keyLookup(bindings) {
  return new Map(PAD_BUTTONS.flatMap((name) => bindings.keys[name].map((c) => [c, BUTTON[name]])));
}

/** Gamepad button index → RetroPad button id (an array, holes for unused indices), for readGamepad. */
export function padLookup(bindings) {
  const map = [];
  for (const name of PAD_BUTTONS) if (bindings.pad[name] !== null) map[bindings.pad[name]] = BUTTON[name];
  return map;
}

/** The pad button `code` presses, or null. */
export function buttonForCode(bindings, code) {
  return PAD_BUTTONS.find((name) => bindings.keys[name].includes(code)) ?? null;
}

const KEY_NAMES = {
  ArrowUp: '↑', ArrowDown: '↓', ArrowLeft: '←', ArrowRight: '→', Space: 'Space', Enter: 'Enter',
  NumpadEnter: 'Enter', ShiftLeft: 'Left Shift', ShiftRight: 'Right Shift', ControlLeft: 'Left Ctrl',
  ControlRight: 'Right Ctrl', AltLeft: 'Left Alt', AltRight: 'Right Alt', Backspace: 'Backspace',
  Minus: '-', Equal: '=', BracketLeft: '[', BracketRight: ']', Semicolon: ';', Quote: "'", Backquote: '`',
  Backslash: '\\', Comma: ',', Period: '.', Slash: '/', IntlBackslash: '\\',
};

/** A short name for a key code: `KeyX` → `X`, `Digit1` → `1`, `ArrowUp` → `↑`, `Numpad4` → `Num 4`. */
export function keyLabel(code) {
  if (KEY_NAMES[code]) return KEY_NAMES[code];
  const m = /^(?:Key|Digit)(.)$/.exec(code);
  if (m) return m[1];
  if (code.startsWith('Numpad')) return `Num ${code.slice(6)}`;
  return code;
}

/** The names of a button's keys, with both Shift (or both Enter) keys shown once: `['Shift']`. */
export function keysLabel(codes) {
  const has = (c) => codes.includes(c);
  const out = [];
  for (const c of codes) {
    if ((c === 'ShiftLeft' || c === 'ShiftRight') && has('ShiftLeft') && has('ShiftRight')) {
      if (!out.includes('Shift')) out.push('Shift');
    } else if (!out.includes(keyLabel(c))) {
      out.push(keyLabel(c));
    }
  }
  return out;
}

const PAD_NAMES = [
  'Bottom face (A / Cross)', 'Right face (B / Circle)', 'Left face (X / Square)', 'Top face (Y / Triangle)',
  'Left bumper', 'Right bumper', 'Left trigger', 'Right trigger', 'Back / Select', 'Start', 'Left stick press',
  'Right stick press', 'D-pad up', 'D-pad down', 'D-pad left', 'D-pad right', 'Home',
];

/** A name for a standard-mapping gamepad button index (null: none). */
export function padLabel(index) {
  if (index === null || index === undefined) return 'none';
  return PAD_NAMES[index] ?? `Button ${index}`;
}

/** `key`'s stored text, or null when there is none or storage is unavailable (or throws). */
export function readStorage(key, storage = globalThis.localStorage) {
  try {
    return storage?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

/** Stores `value` under `key`; false when storage is unavailable (it then lasts as long as the page). */
export function writeStorage(key, value, storage = globalThis.localStorage) {
  try {
    if (!storage) return false;
    storage.setItem(key, value);
    return true;
  } catch {
    return false;
  }
}

/** The stored bindings (the defaults when there are none or storage is unavailable). */
export function loadBindings(storage = globalThis.localStorage) {
  try {
    return parseBindings(readStorage(CONTROLS_KEY, storage));
  } catch {
    return defaultBindings();
  }
}

/** Stores `bindings`; false when storage is unavailable (they then last as long as the page). */
export function storeBindings(bindings, storage = globalThis.localStorage) {
  return writeStorage(CONTROLS_KEY, serializeBindings(bindings), storage);
}

/** localStorage key of the volume. */
export const VOLUME_KEY = 'retrofarm.volume';

/** A stored volume (text) → 0..1; 1 when missing or unreadable. */
export function parseVolume(text) {
  if (typeof text !== 'string' || text.trim() === '') return 1;
  const v = Number(text);
  return Number.isFinite(v) && v >= 0 && v <= 1 ? v : 1;
}
