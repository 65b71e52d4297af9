// The picture's shape as the core wants it shown: the worker's `screen` news on the control
// channel, `{"aspect": width/height before rotation, "rotation": quarter turns counter-clockwise}`
// (docs/controls.md, "Picture shape"). Pure functions; app.js applies them to the page.

/** Validates a `screen` payload: `{aspect, rotation}`, or null when it is malformed. */
export function parseScreen(p) {
  if (!p || typeof p !== 'object') return null;
  const { aspect, rotation } = p;
  if (typeof aspect !== 'number' || !Number.isFinite(aspect) || aspect <= 0) return null;
  // Absurd shapes (a 1-pixel line) are a bug somewhere, not a picture.
  if (aspect < 0.05 || aspect > 20) return null;
  if (!Number.isInteger(rotation) || rotation < 0 || rotation > 3) return null;
  return { aspect, rotation };
}

/** The width/height the picture is shown at, rotation included (a quarter turn swaps them). */
export function shownAspect({ aspect, rotation }) {
  return rotation % 2 === 1 ? 1 / aspect : aspect;
}

/**
 * Where the picture goes in an area of `width`×`height` CSS pixels: the largest box of the shown
 * aspect that fits, centred. Returns `{width, height}` of that box as displayed, and the video
 * element's own size before its rotation (`elementWidth`, `elementHeight`: swapped for a quarter
 * turn) and the CSS `transform` that centres and turns it.
 */
export function fitScreen(screen, width, height) {
  const shown = shownAspect(screen);
  let w = width;
  let h = width / shown;
  if (h > height) {
    h = height;
    w = height * shown;
  }
  const quarter = screen.rotation % 2 === 1;
  // CSS turns clockwise for positive angles; libretro's rotation is counter-clockwise.
  const turn = screen.rotation === 0 ? '' : ` rotate(${-90 * screen.rotation}deg)`;
  return {
    width: w,
    height: h,
    elementWidth: quarter ? h : w,
    elementHeight: quarter ? w : h,
    transform: `translate(-50%, -50%)${turn}`,
  };
}

/** The largest box of `aspect` (width/height) centred in `rect` ({left, top, width, height}). */
export function containedBox(rect, aspect) {
  if (!(aspect > 0) || !(rect.width > 0) || !(rect.height > 0)) return rect;
  let width = rect.width;
  let height = width / aspect;
  if (height > rect.height) {
    height = rect.height;
    width = height * aspect;
  }
  return { left: rect.left + (rect.width - width) / 2, top: rect.top + (rect.height - height) / 2, width, height };
}

/** libretro's pointer range: -POINTER_MAX at one edge of the picture, POINTER_MAX at the other. */
export const POINTER_MAX = 0x7fff;

/**
 * Where the point (`clientX`, `clientY`) is on the game's own picture, in libretro's pointer
 * coordinates (`{x, y}`, -0x7fff..0x7fff from the left and top edges), when the picture is
 * shown in `box` turned by `rotation` quarter turns counter-clockwise; null outside the picture.
 */
export function pointerOnPicture(box, rotation, clientX, clientY) {
  const u = (clientX - box.left) / box.width;
  const v = (clientY - box.top) / box.height;
  if (!(u >= 0 && u <= 1 && v >= 0 && v <= 1)) return null;
  // Undo the turn: the shown (u, v) of a picture point (px, py).
  const [px, py] = [
    [u, v],
    [1 - v, u],
    [1 - u, 1 - v],
    [v, 1 - u],
  ][rotation & 3];
  const scale = (t) => Math.round((t * 2 - 1) * POINTER_MAX);
  return { x: scale(px), y: scale(py) };
}
