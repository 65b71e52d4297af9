// Player input: keyboard, Gamepad API, on-screen touch buttons and a pointer on the picture →
// the RetroPad state packets of docs/protocol.md ("The `input` data channel"): 13 bytes, or 18
// with the pointer (version 2) while one is over the picture.

/** RetroPad button ids: bit n of the packet's button field. */
export const BUTTON = Object.freeze({
  B: 0, Y: 1, SELECT: 2, START: 3, UP: 4, DOWN: 5, LEFT: 6, RIGHT: 7,
  A: 8, X: 9, L: 10, R: 11, L2: 12, R2: 13, L3: 14, R3: 15,
});

/** Keyboard layout (by `KeyboardEvent.code`, so it follows key positions, not letters). */
export const KEYMAP = Object.freeze([
  { codes: ['ArrowUp'], keys: '↑', button: 'UP', label: 'Up' },
  { codes: ['ArrowDown'], keys: '↓', button: 'DOWN', label: 'Down' },
  { codes: ['ArrowLeft'], keys: '←', button: 'LEFT', label: 'Left' },
  { codes: ['ArrowRight'], keys: '→', button: 'RIGHT', label: 'Right' },
  { codes: ['KeyX'], keys: 'X', button: 'A', label: 'A' },
  { codes: ['KeyZ'], keys: 'Z', button: 'B', label: 'B' },
  { codes: ['KeyS'], keys: 'S', button: 'X', label: 'X' },
  { codes: ['KeyA'], keys: 'A', button: 'Y', label: 'Y' },
  { codes: ['KeyQ'], keys: 'Q', button: 'L', label: 'L' },
  { codes: ['KeyW'], keys: 'W', button: 'R', label: 'R' },
  { codes: ['Enter', 'NumpadEnter'], keys: 'Enter', button: 'START', label: 'Start' },
  { codes: ['ShiftLeft', 'ShiftRight'], keys: 'Shift', button: 'SELECT', label: 'Select' },
]);

const KEY_TO_BUTTON = new Map(KEYMAP.flatMap((k) => k.codes.map((c) => [c, BUTTON[k.button]])));

/** Gamepad API "standard" mapping: button index → RetroPad id (SNES-style face buttons). */
export const GAMEPAD_BUTTONS = Object.freeze([
  BUTTON.B, // 0 bottom
  BUTTON.A, // 1 right
  BUTTON.Y, // 2 left
  BUTTON.X, // 3 top
  BUTTON.L, // 4
  BUTTON.R, // 5
  BUTTON.L2, // 6
  BUTTON.R2, // 7
  BUTTON.SELECT, // 8 back/select
  BUTTON.START, // 9
  BUTTON.L3, // 10
  BUTTON.R3, // 11
  BUTTON.UP, // 12
  BUTTON.DOWN, // 13
  BUTTON.LEFT, // 14
  BUTTON.RIGHT, // 15
]);

/** Stick values below this (of full scale) count as centred. */
export const STICK_DEADZONE = 0.15;
/** The left stick past this also presses the d-pad (for d-pad-only games). */
export const STICK_DPAD_THRESHOLD = 0.5;

/** How often the whole state is sent again while nothing changes. */
export const RESEND_MS = 100;

export const PACKET_VERSION = 1;
export const PACKET_LENGTH = 13;
export const POINTER_PACKET_VERSION = 2;
export const POINTER_PACKET_LENGTH = 18;

/** A touch stick's offset (`dx`, `dy` in pixels from its centre) → axes in -1..1, within the circle of `radius`. */
export function stickVector(dx, dy, radius) {
  if (!(radius > 0) || !Number.isFinite(dx) || !Number.isFinite(dy)) return { x: 0, y: 0 };
  const len = Math.hypot(dx, dy);
  const k = len > radius ? radius / len : 1;
  return { x: (dx * k) / radius, y: (dy * k) / radius };
}

/** Each axis from the touch sticks where they are off centre, else from the gamepad. */
export function mergeAxes(pad, touch) {
  return pad.map((v, i) => (touch[i] ? touch[i] : v));
}

/**
 * Encodes one state packet, little-endian: version 1 (u16 seq, u16 buttons, 4 × i16 axes), or
 * version 2 with `pointer` ({x, y, pressed}: i16, i16, a flag byte) after them.
 */
export function encodeInput(seq, buttons, axes = [0, 0, 0, 0], pointer = null) {
  const bytes = new Uint8Array(pointer ? POINTER_PACKET_LENGTH : PACKET_LENGTH);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, pointer ? POINTER_PACKET_VERSION : PACKET_VERSION);
  view.setUint16(1, seq & 0xffff, true);
  view.setUint16(3, buttons & 0xffff, true);
  for (let i = 0; i < 4; i++) view.setInt16(5 + 2 * i, axes[i] ?? 0, true);
  if (pointer) {
    view.setInt16(13, pointer.x, true);
    view.setInt16(15, pointer.y, true);
    view.setUint8(17, pointer.pressed ? 1 : 0);
  }
  return bytes;
}

/** A stick axis in -1..1 → i16, with the dead zone applied. */
export function axisToI16(v) {
  if (!Number.isFinite(v) || Math.abs(v) < STICK_DEADZONE) return 0;
  return Math.max(-32767, Math.min(32767, Math.round(v * 32767)));
}

/**
 * Reads a standard-mapping gamepad into `{buttons, axes}`; `mapping` is gamepad button index →
 * RetroPad id (the player's bindings, see controls.js padLookup).
 */
export function readGamepad(pad, mapping = GAMEPAD_BUTTONS) {
  let buttons = 0;
  pad.buttons.forEach((b, i) => {
    const id = mapping[i];
    if (id !== undefined && (b.pressed || b.value > 0.5)) buttons |= 1 << id;
  });
  const axes = [0, 1, 2, 3].map((i) => axisToI16(pad.axes[i] ?? 0));
  const [x, y] = [pad.axes[0] ?? 0, pad.axes[1] ?? 0];
  if (x < -STICK_DPAD_THRESHOLD) buttons |= 1 << BUTTON.LEFT;
  if (x > STICK_DPAD_THRESHOLD) buttons |= 1 << BUTTON.RIGHT;
  if (y < -STICK_DPAD_THRESHOLD) buttons |= 1 << BUTTON.UP;
  if (y > STICK_DPAD_THRESHOLD) buttons |= 1 << BUTTON.DOWN;
  return { buttons, axes };
}

function isFormControl(el) {
  return !!el && el instanceof Element && !!el.closest('input, select, textarea, button, a[href], [contenteditable]');
}

/**
 * The player's pad: merges keyboard, gamepads and touch buttons, and sends the whole state on
 * the `input` channel on every change and every RESEND_MS.
 */
export class PadInput {
  /**
   * @param {object} o
   * @param {() => boolean} o.active whether keys belong to the game now (a game is on screen)
   * @param {(btn: string, down: boolean) => void} [o.onButton] for highlighting the key map
   */
  constructor({ active, onButton } = {}) {
    this.active = active ?? (() => true);
    this.onButton = onButton ?? (() => {});
    this.keyMap = KEY_TO_BUTTON; // code → button id (the player's bindings: setBindings)
    this.padMap = GAMEPAD_BUTTONS; // gamepad button index → button id
    this.keyButtons = 0;
    this.touchButtons = 0;
    this.touchAxes = [0, 0, 0, 0];
    this.pad = { buttons: 0, axes: [0, 0, 0, 0] };
    this.pointer = null; // {x, y, pressed} while a pointer is over the picture
    this.heldKeys = new Map(); // code → button id
    this.seq = 0;
    this.sent = 0;
    this.last = null; // {buttons, axes} last sent
    this.channel = null;
    this.timer = null;
    this.polling = false;

    window.addEventListener('keydown', (e) => this.#key(e, true));
    window.addEventListener('keyup', (e) => this.#key(e, false));
    window.addEventListener('blur', () => this.releaseAll());
    document.addEventListener('visibilitychange', () => document.hidden && this.releaseAll());
    window.addEventListener('gamepadconnected', () => this.#startPolling());
  }

  /** The combined state. */
  state() {
    const buttons = this.keyButtons | this.touchButtons | this.pad.buttons;
    return { buttons: buttons & 0xffff, axes: mergeAxes(this.pad.axes, this.touchAxes), pointer: this.pointer };
  }

  /** The pointer on the picture ({x, y, pressed} in libretro's coordinates), or null off it. */
  setPointer(pointer) {
    this.pointer = pointer;
    this.#changed();
  }

  /**
   * Uses `keys` (KeyboardEvent.code → button id) and `pad` (gamepad button index → button id)
   * from now on; everything held is let go.
   */
  setBindings(keys, pad) {
    this.keyMap = keys;
    this.padMap = pad;
    this.releaseAll();
    if (this.polling) this.pollGamepads();
  }

  #key(e, down) {
    const id = this.keyMap.get(e.code);
    if (id === undefined) return;
    if (down) {
      if (e.ctrlKey || e.metaKey || e.altKey) return; // leave browser shortcuts alone
      if (!this.active() || isFormControl(e.target)) return;
      e.preventDefault(); // no scrolling with the arrows, no clicks with Enter
      if (e.repeat || this.heldKeys.has(e.code)) return;
      this.heldKeys.set(e.code, id);
    } else {
      if (!this.heldKeys.has(e.code)) return;
      e.preventDefault();
      this.heldKeys.delete(e.code);
    }
    this.keyButtons = 0;
    for (const b of this.heldKeys.values()) this.keyButtons |= 1 << b;
    this.#changed();
  }

  /** An on-screen button (`name` from BUTTON) went down or up. */
  setTouch(name, down) {
    const bit = 1 << BUTTON[name];
    this.touchButtons = down ? this.touchButtons | bit : this.touchButtons & ~bit;
    this.#changed();
  }

  /** An on-screen stick moved: `stick` 0 (left) or 1 (right), `x` and `y` in -1..1 (down is +). */
  setTouchStick(stick, x, y) {
    this.touchAxes[2 * stick] = axisToI16(x);
    this.touchAxes[2 * stick + 1] = axisToI16(y);
    this.#changed();
  }

  /** Lets go of everything (focus lost, tab hidden, game left). */
  releaseAll() {
    this.heldKeys.clear();
    this.keyButtons = 0;
    this.touchButtons = 0;
    this.touchAxes = [0, 0, 0, 0];
    this.pointer = null;
    this.#changed();
  }

  #startPolling() {
    if (this.polling) return;
    this.polling = true;
    const poll = () => {
      this.pollGamepads();
      if (this.polling) requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  }

  /** Reads the first connected standard-mapping gamepad (or any pad if none is standard). */
  pollGamepads() {
    const pads = (navigator.getGamepads?.() ?? []).filter(Boolean);
    const pad = pads.find((p) => p.mapping === 'standard') ?? pads[0];
    const next = pad ? readGamepad(pad, this.padMap) : { buttons: 0, axes: [0, 0, 0, 0] };
    if (!pad) this.polling = false;
    if (next.buttons !== this.pad.buttons || next.axes.some((v, i) => v !== this.pad.axes[i])) {
      this.pad = next;
      this.#changed();
    }
  }

  #changed() {
    const s = this.state();
    const prev = this.last;
    const changedBits = prev ? prev.buttons ^ s.buttons : s.buttons;
    for (const [name, id] of Object.entries(BUTTON)) {
      if (changedBits & (1 << id)) this.onButton(name, !!(s.buttons & (1 << id)));
    }
    const samePointer = (a, b) => a === b || (a && b && a.x === b.x && a.y === b.y && a.pressed === b.pressed);
    const changed = !prev || prev.buttons !== s.buttons || prev.axes.some((v, i) => v !== s.axes[i]);
    if (changed || !samePointer(prev.pointer, s.pointer)) this.#send(s);
  }

  /** Sends `s` now if the channel is open; counts as a new sequence number either way. */
  #send(s = this.state()) {
    this.last = s;
    const ch = this.channel;
    if (!ch || ch.readyState !== 'open') return;
    this.seq = (this.seq + 1) & 0xffff;
    try {
      ch.send(encodeInput(this.seq, s.buttons, s.axes, s.pointer));
      this.sent++;
    } catch (err) {
      console.warn('input: send failed', err);
    }
  }

  /** Uses `channel` (the worker's `input` data channel) from now on; null detaches. */
  attach(channel) {
    this.detach();
    this.channel = channel;
    if (!channel) return;
    channel.binaryType = 'arraybuffer';
    const start = () => {
      this.#send();
      this.timer = setInterval(() => {
        if (this.polling) this.pollGamepads();
        this.#send();
      }, RESEND_MS);
    };
    if (channel.readyState === 'open') start();
    else channel.addEventListener('open', start, { once: true });
    channel.addEventListener('close', () => this.channel === channel && this.detach());
  }

  detach() {
    clearInterval(this.timer);
    this.timer = null;
    this.channel = null;
  }
}
