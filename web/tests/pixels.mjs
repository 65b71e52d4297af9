// PNG decoding (8-bit greyscale/RGB/RGBA, non-interlaced: what Chromium's screenshots are) with
// node's zlib, and finding a coloured block's centroid. No dependencies.

import zlib from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS = { 0: 1, 2: 3, 4: 2, 6: 4 }; // colour type → samples per pixel

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Decodes a PNG into `{width, height, data}` with `data` as RGBA bytes. */
export function decodePng(buf) {
  if (!Buffer.isBuffer(buf)) buf = Buffer.from(buf);
  if (!buf.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG');
  let pos = 8;
  let ihdr = null;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const body = buf.subarray(pos + 8, pos + 8 + len);
    pos += 12 + len;
    if (type === 'IHDR') {
      ihdr = {
        width: body.readUInt32BE(0),
        height: body.readUInt32BE(4),
        depth: body[8],
        colorType: body[9],
        interlace: body[12],
      };
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
  }
  if (!ihdr) throw new Error('PNG without IHDR');
  const { width, height, depth, colorType, interlace } = ihdr;
  const channels = CHANNELS[colorType];
  if (depth !== 8 || !channels || interlace !== 0) {
    throw new Error(`unsupported PNG: depth ${depth}, colour type ${colorType}, interlace ${interlace}`);
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new Error('truncated PNG data');
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const up = row - stride;
    for (let i = 0; i < stride; i++) {
      const x = raw[src + i];
      const a = i >= channels ? px[row + i - channels] : 0;
      const b = y > 0 ? px[up + i] : 0;
      const c = y > 0 && i >= channels ? px[up + i - channels] : 0;
      let v;
      switch (filter) {
        case 0: v = x; break;
        case 1: v = x + a; break;
        case 2: v = x + b; break;
        case 3: v = x + ((a + b) >> 1); break;
        case 4: v = x + paeth(a, b, c); break;
        default: throw new Error(`bad PNG filter ${filter} in row ${y}`);
      }
      px[row + i] = v & 0xff;
    }
  }
  const data = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const s = p * channels;
    if (channels >= 3) {
      data[p * 4] = px[s];
      data[p * 4 + 1] = px[s + 1];
      data[p * 4 + 2] = px[s + 2];
    } else {
      data[p * 4] = data[p * 4 + 1] = data[p * 4 + 2] = px[s];
    }
    data[p * 4 + 3] = channels === 4 ? px[s + 3] : channels === 2 ? px[s + 1] : 255;
  }
  return { width, height, data };
}

/** Player 1's block: white (255,255,255) on dark blue (0,42,136). */
export const isWhite = (r, g, b) => r > 190 && g > 190 && b > 190;
/** Player 2's block: red (181,49,32). Loose, since 4:2:0 video smears colour edges. */
export const isRed = (r, g, b) => r > 120 && g < 110 && b < 100 && r - g > 60;

/**
 * Centroid of the pixels matching `match(r, g, b)`: `{x, y, count}` in image pixels, or null
 * when fewer than `minCount` match.
 */
export function centroid(img, match, minCount = 20) {
  let sx = 0;
  let sy = 0;
  let n = 0;
  const { width, height, data } = img;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      if (match(data[i], data[i + 1], data[i + 2])) {
        sx += x;
        sy += y;
        n++;
      }
    }
  }
  return n >= minCount ? { x: sx / n, y: sy / n, count: n } : null;
}

/**
 * The block's centroid in frame pixels, from a screenshot of a video element that shows a
 * `frame.width`×`frame.height` picture with `object-fit: contain` (or `fill`, see below). Null when not visible.
 */
export function blockPosition(img, match, frame = { width: 256, height: 240 }) {
  // `frame.fill`: the picture is stretched over the whole element (object-fit: fill, the page's
  // display at the core's aspect ratio) instead of letterboxed.
  let sx = Math.min(img.width / frame.width, img.height / frame.height);
  let sy = sx;
  if (frame.fill) [sx, sy] = [img.width / frame.width, img.height / frame.height];
  const ox = (img.width - frame.width * sx) / 2;
  const oy = (img.height - frame.height * sy) / 2;
  const c = centroid(img, match, Math.max(20, Math.round(16 * 16 * sx * sy * 0.3)));
  return c && { x: (c.x + 0.5 - ox) / sx - 0.5, y: (c.y + 0.5 - oy) / sy - 0.5, count: c.count };
}

/**
 * The video's frame size and how the page shows it, for blockPosition: `{width, height, fill}`
 * (`fill`: stretched to the element, as once the core's picture shape is known). Runs in the page.
 */
export function videoFrame(page) {
  return page.evaluate(() => {
    const v = document.getElementById('video');
    return { width: v.videoWidth, height: v.videoHeight, fill: getComputedStyle(v).objectFit === 'fill' };
  });
}

/** Encodes RGBA pixels as a PNG, row y with filter y % 5 (all five): for the decoder's tests. */
export function encodePng(width, height, rgba) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, body) => {
    const out = Buffer.alloc(12 + body.length);
    out.writeUInt32BE(body.length, 0);
    out.write(type, 4, 'latin1');
    body.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + body.length)), 8 + body.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 6;
  const stride = width * 4;
  const raw = Buffer.alloc(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const filter = y % 5;
    raw[y * (stride + 1)] = filter;
    for (let i = 0; i < stride; i++) {
      const x = rgba[y * stride + i];
      const a = i >= 4 ? rgba[y * stride + i - 4] : 0;
      const b = y > 0 ? rgba[(y - 1) * stride + i] : 0;
      const c = y > 0 && i >= 4 ? rgba[(y - 1) * stride + i - 4] : 0;
      const pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][filter];
      raw[y * (stride + 1) + 1 + i] = (x - pred) & 0xff;
    }
  }
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
