// The game list's keyboard and gamepad navigation (a roving tabindex over a wrapped grid of
// buttons) and its filter. Pure functions; app.js wires them to the #games list.

/** With more games than this, a filter box is shown above the list. */
export const FILTER_MIN_GAMES = 8;

/** Games sorted for the list: by system, then name (case-insensitive). */
export function sortGames(games) {
  const key = (s) => String(s ?? '').toLowerCase();
  return games.slice().sort((a, b) => key(a.system).localeCompare(key(b.system)) || key(a.name).localeCompare(key(b.name)));
}

/** The games whose name or system contains every word of `query` (case-insensitive). */
export function filterGames(games, query) {
  const words = String(query ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return games.slice();
  return games.filter((g) => {
    const text = `${g.name} ${g.system}`.toLowerCase();
    return words.every((w) => text.includes(w));
  });
}

/**
 * The index focus moves to from `index` in a list of `count` entries laid out `columns` to a
 * row, for `key` (a KeyboardEvent.key, or 'up'/'down'/'left'/'right' from a gamepad): arrows
 * move by one entry or one row (no wrapping), Home and End go to the ends. Returns `index` when
 * the move leaves the list (e.g. Up on the first row), null for a key that does not move.
 */
export function moveIndex(key, index, count, columns = 1) {
  if (count <= 0) return null;
  const cols = Math.max(1, Math.floor(columns) || 1);
  const last = count - 1;
  const i = Math.min(Math.max(index, 0), last);
  switch (key) {
    case 'ArrowLeft':
    case 'left':
      return Math.max(0, i - 1);
    case 'ArrowRight':
    case 'right':
      return Math.min(last, i + 1);
    case 'ArrowUp':
    case 'up':
      return i - cols >= 0 ? i - cols : i;
    case 'ArrowDown':
    case 'down':
      if (i + cols <= last) return i + cols;
      // A short last row: Down from the row above it goes to its last entry.
      return Math.floor(i / cols) < Math.floor(last / cols) ? last : i;
    case 'Home':
      return 0;
    case 'End':
      return last;
    default:
      return null;
  }
}

/**
 * Type-ahead: the index of the next entry after `index` (wrapping round) whose name starts with
 * `char` (case-insensitive), or -1 when none does.
 */
export function letterIndex(names, index, char) {
  if (typeof char !== 'string' || char.length !== 1 || !/\S/.test(char)) return -1;
  const c = char.toLowerCase();
  for (let step = 1; step <= names.length; step++) {
    const j = (index + step) % names.length;
    if (String(names[j]).toLowerCase().startsWith(c)) return j;
  }
  return -1;
}

/** A held gamepad direction repeats after this, then every GAMEPAD_REPEAT_MS. */
export const GAMEPAD_REPEAT_DELAY_MS = 400;
export const GAMEPAD_REPEAT_MS = 150;
/** The left stick past this counts as a direction in the list. */
export const GAMEPAD_STICK_THRESHOLD = 0.5;

/** The list direction a standard-mapping gamepad holds (d-pad first, then left stick), or null. */
export function padDirection(pad) {
  const pressed = (i) => !!(pad.buttons[i]?.pressed || pad.buttons[i]?.value > 0.5);
  if (pressed(12)) return 'up';
  if (pressed(13)) return 'down';
  if (pressed(14)) return 'left';
  if (pressed(15)) return 'right';
  const [x = 0, y = 0] = pad.axes;
  if (Math.abs(y) >= Math.abs(x)) {
    if (y < -GAMEPAD_STICK_THRESHOLD) return 'up';
    if (y > GAMEPAD_STICK_THRESHOLD) return 'down';
  } else {
    if (x < -GAMEPAD_STICK_THRESHOLD) return 'left';
    if (x > GAMEPAD_STICK_THRESHOLD) return 'right';
  }
  return null;
}

/**
 * Turns gamepad readings into list actions: a direction when it is first held and then on
 * repeat, 'start' when button 0 (bottom face) goes down. B and the others do nothing here.
 * `step(pad, now)` returns the actions of that reading.
 */
export class PadNavigator {
  constructor() {
    this.dir = null;
    this.nextAt = 0;
    this.startHeld = true; // a button held when the lobby shows does not count
  }

  step(pad, now) {
    const actions = [];
    const dir = pad ? padDirection(pad) : null;
    if (dir !== this.dir) {
      this.dir = dir;
      if (dir) {
        actions.push(dir);
        this.nextAt = now + GAMEPAD_REPEAT_DELAY_MS;
      }
    } else if (dir && now >= this.nextAt) {
      actions.push(dir);
      this.nextAt = now + GAMEPAD_REPEAT_MS;
    }
    const start = !!pad && !!(pad.buttons[0]?.pressed || pad.buttons[0]?.value > 0.5);
    if (start && !this.startHeld) actions.push('start');
    this.startHeld = start;
    return actions;
  }

  /** Forgets held buttons (the lobby shows again): what is held now must be let go first. */
  reset() {
    this.dir = null;
    this.startHeld = true;
  }
}
