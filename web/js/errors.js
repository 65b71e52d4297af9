// What the page tells the player for each error code of docs/protocol.md, and what it does next.

/**
 * `text`: the message shown in #error. `next`: what the page offers —
 *  'retry' (reconnect), 'games' (back to the game list), 'port' (choose another port),
 *  'reload' (reload the page), 'none' (keep going; a programming error was reported).
 */
export const ERRORS = Object.freeze({
  no_free_worker: {
    text: 'All game servers are busy right now. Please try again in a minute.',
    next: 'retry',
  },
  unknown_game: {
    text: 'This server does not have that game. Please pick one from the list.',
    next: 'games',
  },
  unknown_room: {
    text: 'That game room does not exist any more, and it has no save to resume from. You can start a new game instead.',
    next: 'none',
  },
  malformed: {
    text: 'The server could not understand a message from this page (a bug). You can keep playing.',
    next: 'none',
  },
  too_large: {
    text: 'This page sent the server a message that was too large (a bug). You can keep playing.',
    next: 'none',
  },
  unknown_type: {
    text: 'This page sent the server a message it does not know (a bug). You can keep playing.',
    next: 'none',
  },
  bad_state: {
    text: 'This page sent the server a message at the wrong moment (a bug). You can keep playing.',
    next: 'none',
  },
  port_taken: {
    text: 'Another player already has that controller port in this room. Please choose another port.',
    next: 'port',
  },
  worker_lost: {
    text: 'The connection to the game server was lost. Reload the page to continue on another server.',
    next: 'reload',
  },
  room_closed: {
    text: 'The game stopped on the server. You can start it again.',
    next: 'games',
  },
  internal: {
    text: 'Something went wrong on the server.',
    next: 'games',
  },
  // Raised by the page itself, not by the coordinator.
  connection_lost: {
    text: 'The connection to retrofarm was lost. Reload the page to reconnect.',
    next: 'reload',
  },
  media_failed: {
    text: 'The video connection to the game server failed (a firewall may block it). Please try again.',
    next: 'games',
  },
  // A game command (the `control` data channel) failed; the game goes on as it was.
  save_failed: {
    text: 'The game could not be saved. The game goes on as before.',
    next: 'none',
  },
  port_failed: {
    text: 'You could not switch to that port. You play on as before.',
    next: 'none',
  },
  load_failed: {
    text: 'The save could not be loaded. The game goes on as before.',
    next: 'none',
  },
  reset_failed: {
    text: 'The game could not be reset. The game goes on as before.',
    next: 'none',
  },
});

/** The codes of failed game commands: a later command that works clears them. */
export const COMMAND_ERRORS = Object.freeze({
  save: 'save_failed',
  load: 'load_failed',
  reset: 'reset_failed',
  port: 'port_failed',
});

/** The entry for `code`; unknown codes are shown like `internal`. */
export function describeError(code) {
  return ERRORS[code] ?? { text: `Unexpected error (${code}).`, next: 'games' };
}
