// The WebSocket to the coordinator (`/ws`): JSON text frames `{"t": type, "p": payload}`.
// docs/protocol.md, section 1, is the reference for every type below.

/** Message types the coordinator sends. */
export const FROM_SERVER = Object.freeze({
  CHECK_LATENCY: 'check_latency',
  INIT: 'init',
  GAME_STARTED: 'game_started',
  OFFER: 'offer',
  ICE: 'ice',
  ERROR: 'error',
});

/** Message types the page sends. */
export const TO_SERVER = Object.freeze({
  LATENCY: 'latency',
  START_GAME: 'start_game',
  ANSWER: 'answer',
  ICE: 'ice',
  QUIT: 'quit',
});

/** The `/ws` URL on this page's host, with the optional `room` and `zone` parameters. */
export function signalingUrl(loc, { room, zone } = {}) {
  const url = new URL('/ws', loc.href);
  url.protocol = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  if (room) url.searchParams.set('room', room);
  if (zone) url.searchParams.set('zone', zone);
  return url.toString();
}

/**
 * One signaling connection. Handlers: `onMessage(type, payload)`, `onOpen()`, `onClose(event)`.
 */
export class Signaling {
  constructor(url, { onMessage, onOpen, onClose } = {}) {
    this.url = url;
    this.onMessage = onMessage ?? (() => {});
    this.onOpen = onOpen ?? (() => {});
    this.onClose = onClose ?? (() => {});
    this.closedByUs = false;
    this.ws = new WebSocket(url);
    this.ws.addEventListener('open', () => this.onOpen());
    this.ws.addEventListener('close', (e) => this.onClose(e, this.closedByUs));
    this.ws.addEventListener('message', (e) => this.#receive(e.data));
  }

  #receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn('signaling: ignoring a frame that is not JSON', data);
      return;
    }
    if (!msg || typeof msg.t !== 'string') {
      console.warn('signaling: ignoring a frame without a type', msg);
      return;
    }
    this.onMessage(msg.t, msg.p);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a message; `payload` is left out for types without one. Returns false when closed. */
  send(type, payload) {
    const msg = payload === undefined ? { t: type } : { t: type, p: payload };
    return this.sendRaw(JSON.stringify(msg));
  }

  /** Sends text as is (tests use this to check the server's answer to malformed input). */
  sendRaw(text) {
    if (!this.isOpen) return false;
    this.ws.send(text);
    return true;
  }

  close() {
    this.closedByUs = true;
    this.ws.close();
  }
}
