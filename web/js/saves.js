// Game commands on the worker's `control` data channel (docs/protocol.md, "The `control` data
// channel"): save, load, list slots, reset, switch port. JSON text both ways, `{"t": type, "p": payload}`;
// the worker answers every command, in order, on the same channel.

/** Save slots per player and game. */
export const SLOTS = 4;
/** The worker refuses commands longer than this (bytes of UTF-8). */
export const MAX_COMMAND_BYTES = 1024;
/** How long the page waits for an answer before giving up on a command. */
export const COMMAND_TIMEOUT_MS = 10_000;
/** Commands waiting behind the one in flight; more are refused at once. */
export const MAX_QUEUED = 8;

/** The player id rule: 8 to 64 characters of A-Z a-z 0-9 - _. */
export const USER_ID = /^[A-Za-z0-9_-]{8,64}$/;
const USER_KEY = 'retrofarm.user';

/**
 * Messages the worker sends of its own accord (news, not answers): they go to `onNews` and never
 * settle a command. `screen`: the picture's shape (docs/controls.md).
 */
export const NEWS_TYPES = Object.freeze(new Set(['screen']));

/** The reply types that answer each command (besides `failed`). */
const ANSWERS = Object.freeze({ save: 'saved', load: 'loaded', slots: 'slots', reset: 'reset', port: 'port' });

function randomId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // randomUUID needs a secure context; getRandomValues does not.
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

let pageUser = null;

/**
 * This browser's player id: made once and kept in localStorage, or for the page's life when
 * localStorage is unavailable (private modes, blocked storage).
 */
export function playerId(storage = globalThis.localStorage) {
  let stored = null;
  try {
    stored = storage?.getItem(USER_KEY) ?? null;
  } catch {
    // Storage denied: fall through to the page's own id.
  }
  if (stored && USER_ID.test(stored)) return stored;
  pageUser ??= randomId();
  try {
    storage?.setItem(USER_KEY, pageUser);
  } catch {
    // Quota or policy: the id lasts as long as the page.
  }
  return pageUser;
}

/** The reply type that answers `reply`'s command, e.g. `save` for `saved` or `failed` of a save. */
function answeredCommand(reply) {
  if (reply.t === 'failed') return reply.p?.command ?? 'unknown';
  return Object.keys(ANSWERS).find((c) => ANSWERS[c] === reply.t) ?? null;
}

/** A failure made by this page (no answer, channel closed…), shaped like the worker's. */
function localFailure(command, message) {
  return { t: 'failed', p: { command, message }, local: true };
}

/**
 * Owns the `control` channel: sends one command at a time (others wait in order, up to
 * MAX_QUEUED), matches each answer to its command, gives up after `timeoutMs`, and fails what is
 * pending when the channel closes. Every command's promise resolves with a reply object,
 * `{t, p}`: the worker's answer, or a `failed` one made here (with `local: true`); it never
 * rejects.
 */
export class GameControl {
  /**
   * @param {object} [o]
   * @param {number} [o.timeoutMs]
   * @param {(reply: object, command: object) => void} [o.onReply] every settled command
   * @param {() => void} [o.onChange] the channel's state or the pending commands changed
   * @param {(msg: object) => void} [o.onNews] a message of NEWS_TYPES, `{t, p}` as sent
   */
  constructor({ timeoutMs = COMMAND_TIMEOUT_MS, onReply, onChange, onNews } = {}) {
    this.timeoutMs = timeoutMs;
    this.onReply = onReply ?? (() => {});
    this.onNews = onNews ?? (() => {});
    this.onChange = onChange ?? (() => {});
    this.channel = null;
    this.queue = []; // commands not sent yet, in order
    this.inFlight = null; // {t, p, resolve, timer}
    this.expired = []; // commands sent that timed out: their late answers come first, in order
    this.cleanup = null;
  }

  /** The channel's readyState, or 'none'. */
  get state() {
    return this.channel?.readyState ?? 'none';
  }

  get ready() {
    return this.state === 'open';
  }

  /** The type of the command waiting for its answer, or null. */
  get busy() {
    return this.inFlight?.t ?? null;
  }

  /** Uses `channel` (the worker's `control` channel) from now on; null detaches. */
  attach(channel) {
    this.detach();
    if (!channel) return;
    this.channel = channel;
    const onOpen = () => {
      this.onChange();
      this.#next();
    };
    const onClose = () => {
      if (this.channel === channel) this.detach('The connection to the game server closed before it answered.');
    };
    const onMessage = (e) => this.#receive(e.data);
    channel.addEventListener('open', onOpen);
    channel.addEventListener('close', onClose);
    channel.addEventListener('message', onMessage);
    this.cleanup = () => {
      channel.removeEventListener('open', onOpen);
      channel.removeEventListener('close', onClose);
      channel.removeEventListener('message', onMessage);
    };
    this.onChange();
    if (channel.readyState === 'open') this.#next();
  }

  /** Lets go of the channel; what is pending or queued fails with `reason`. */
  detach(reason = 'The game connection ended before the server answered.') {
    this.cleanup?.();
    this.cleanup = null;
    const had = !!this.channel;
    this.channel = null;
    this.expired = [];
    const pending = [this.inFlight, ...this.queue].filter(Boolean);
    this.inFlight = null;
    this.queue = [];
    for (const c of pending) this.#settle(c, localFailure(c.t, reason));
    if (had || pending.length) this.onChange();
  }

  save(user, slot) {
    return this.send('save', { user, slot });
  }

  load(user, slot) {
    return this.send('load', { user, slot });
  }

  slots(user) {
    return this.send('slots', { user });
  }

  reset() {
    return this.send('reset');
  }

  /**
   * Sends a `report` (what the page received) at once: it is not answered, so it neither waits
   * in the queue nor holds it up. Returns false when the channel is not open.
   */
  report(payload) {
    if (!this.ready) return false;
    try {
      this.channel.send(JSON.stringify({ t: 'report', p: payload }));
      return true;
    } catch {
      return false;
    }
  }

  /** Queues a command (`payload` undefined for `reset`); resolves with its reply. */
  send(t, payload) {
    const msg = payload === undefined ? { t } : { t, p: payload };
    const text = JSON.stringify(msg);
    const command = { t, p: payload, text };
    const promise = new Promise((resolve) => (command.resolve = resolve));
    if (!this.channel || this.state === 'closing' || this.state === 'closed') {
      this.#settle(command, localFailure(t, 'Not connected to the game server.'));
    } else if (new TextEncoder().encode(text).length > MAX_COMMAND_BYTES) {
      this.#settle(command, localFailure(t, `The command is too large (over ${MAX_COMMAND_BYTES} bytes).`));
    } else if (this.queue.length >= MAX_QUEUED) {
      this.#settle(command, localFailure(t, 'Too many commands are waiting; try again in a moment.'));
    } else {
      this.queue.push(command);
      this.#next();
      this.onChange();
    }
    return promise;
  }

  /** Sends the next queued command once nothing is in flight and the channel is open. */
  #next() {
    if (this.inFlight || this.queue.length === 0) return;
    const command = this.queue[0];
    if (!this.ready) {
      // Waiting for the channel to open counts against the command's time too.
      command.timer ??= setTimeout(() => this.#timeout(command), this.timeoutMs);
      return;
    }
    this.queue.shift();
    this.inFlight = command;
    clearTimeout(command.timer);
    command.timer = setTimeout(() => this.#timeout(command), this.timeoutMs);
    try {
      this.channel.send(command.text);
    } catch (err) {
      this.inFlight = null;
      this.#settle(command, localFailure(command.t, `Could not send the command: ${err?.message ?? err}`));
      this.#next();
    }
    this.onChange();
  }

  #timeout(command) {
    const secs = Math.round(this.timeoutMs / 1000);
    const message = `The game server did not answer within ${secs} s; the command may or may not have happened.`;
    if (this.inFlight === command) {
      // Its answer may still come: it is then the next message, and is dropped.
      this.inFlight = null;
      this.expired.push(command.t);
    } else {
      const i = this.queue.indexOf(command);
      if (i < 0) return;
      this.queue.splice(i, 1);
    }
    this.#settle(command, localFailure(command.t, message));
    this.#next();
    this.onChange();
  }

  #receive(data) {
    let reply;
    try {
      reply = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
    } catch {
      console.warn('control: ignoring a message that is not JSON', data);
      return;
    }
    if (!reply || typeof reply.t !== 'string') {
      console.warn('control: ignoring a message without a type', reply);
      return;
    }
    if (NEWS_TYPES.has(reply.t)) {
      this.onNews(reply);
      return;
    }
    const answers = answeredCommand(reply);
    // Late answers to commands that timed out come first (the worker answers in order). A
    // command the worker never answered is skipped when the answer is of another kind.
    while (this.expired.length > 0) {
      const late = this.expired.shift();
      if (late === answers || answers === 'unknown') {
        console.warn('control: dropping a late answer', reply);
        return;
      }
    }
    const command = this.inFlight;
    if (!command) {
      console.warn('control: ignoring an answer to no command', reply);
      return;
    }
    if (answers !== command.t && answers !== 'unknown') {
      // Not this command's answer (the worker only answers, in order): leave it waiting.
      console.warn(`control: ignoring ${reply.t}, which does not answer ${command.t}`, reply);
      return;
    }
    this.inFlight = null;
    clearTimeout(command.timer);
    this.#settle(command, reply);
    this.#next();
    this.onChange();
  }

  #settle(command, reply) {
    clearTimeout(command.timer);
    command.timer = null;
    command.resolve(reply);
    this.onReply(reply, { t: command.t, p: command.p });
  }
}

/** `saved_ms` as a short local time: the time today, else the date and time. */
export function formatSavedAt(ms, now = new Date()) {
  const d = new Date(ms);
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}
