// (g) The GPU path: a worker told to convert on Vulkan (here Mesa's lavapipe, a CPU Vulkan
// device) and to encode H264 on NVENC (here the NVENC test double, NVIDIA's API over openh264:
// it proves our use of the API, not the hardware) streams the homebrew game to Chromium
// upscaled twice by the compute shader: the video is 512×480 (or 448), both players' blocks
// are where the game draws them (in doubled coordinates), and the worker's /healthz and
// metrics name the device and the encoder. Skips, saying why, without lavapipe or the double.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before } from 'node:test';

import path from 'node:path';

import { BIN_DIR, GAME, keepArtifact, launchBrowser, openPage, scenario, sleep, startCluster, waitForState } from './harness.mjs';
import { blockPosition, decodePng, isRed, isWhite, videoFrame } from './pixels.mjs';

const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
const SCALE = 2;
// Block centres at power-on, in the 256×240 coordinates of games/README.md.
const START = { p1: { x: 71.5, y: 119.5 }, p2: { x: 183.5, y: 119.5 } };

let cluster;
let browser;
const DOUBLE = path.join(BIN_DIR, 'libretrofarm_nvenc_double.so');
const missing =
  (!fs.existsSync(LAVAPIPE_ICD) && `${LAVAPIPE_ICD} is missing (install mesa-vulkan-drivers)`) ||
  (!fs.existsSync(DOUBLE) && `${DOUBLE} is missing (cargo build -p retrofarm-nvenc-double)`);

before(async () => {
  if (missing) return;
  // The workers this test starts inherit it; the loader refuses the double without it.
  process.env.RETROFARM_NVENC_TEST_DOUBLE = '1';
  const extra = ['--gpu', 'vulkan', '--video-scale', String(SCALE), '--nvenc-library', DOUBLE];
  const worker = { id: 'gpu1', zone: 'eu', skipRepeatedFrames: true, extra };
  [cluster, browser] = await Promise.all([startCluster({ workers: [worker] }), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

scenario('a worker converting on Vulkan streams an upscaled picture', { timeout: 90_000 }, async (t) => {
  if (missing) return t.skip(missing);
  const worker = cluster.workers.get('gpu1');
  await worker.waitLog('frames are converted on the GPU');
  const http = /worker listening http=(\S+)/.exec(worker.output)?.[1];
  assert.ok(http, 'the worker logs its HTTP address');
  const health = await (await fetch(`http://${http}/healthz`)).text();
  t.diagnostic(`healthz: ${health.trim().replace('\n', ' | ')}`);
  assert.match(health, /^ok\nvulkan device \d+: llvmpipe.*\(CPU\)/, 'healthz reports the Vulkan device');
  assert.match(health, /\nnvenc API 12\.1 .*TEST DOUBLE/, 'healthz reports NVENC, and that it is the double');

  const { page } = await openPage(browser, `${cluster.url}/`, { name: 'gpu player' });
  await page.getByRole('button', { name: new RegExp(GAME) }).click();
  await waitForState(page, (s) => s.phase === 'playing', { what: 'game_started' });
  let stats;
  let video;
  const deadline = Date.now() + 10_000;
  for (;;) {
    stats = await page.evaluate(() => window.retrofarm.pollStats());
    video = await page.evaluate(() => {
      const v = document.getElementById('video');
      return { width: v.videoWidth, height: v.videoHeight };
    });
    if (stats.framesDecoded >= 30 && video.width > 0) break;
    assert.ok(Date.now() < deadline, `no upscaled stream within 10 s: ${JSON.stringify({ stats, video })}`);
    await sleep(150);
  }
  assert.equal(video.width, 256 * SCALE, `videoWidth ${video.width}`);
  // 240 lines, or 224 with the overscan cropped.
  assert.ok([240 * SCALE, 224 * SCALE].includes(video.height), `videoHeight ${video.height}`);
  const crop = (240 - video.height / SCALE) / 2;

  // The stats overlay (white text) would count as player 1's white block.
  await page.getByRole('button', { name: 'Stats' }).click();
  await page.locator('#stats').waitFor({ state: 'hidden' });
  const png = await page.locator('#video').screenshot();
  keepArtifact('gpu-upscaled.png', png);
  const img = decodePng(png);
  // Stretched over the element once the page knows the core's picture shape (object-fit: fill).
  const frame = { width: video.width, height: video.height, fill: (await videoFrame(page)).fill };
  for (const [who, match, start] of [['player 1', isWhite, START.p1], ['player 2', isRed, START.p2]]) {
    const p = blockPosition(img, match, frame);
    assert.ok(p, `${who}'s block is in the picture (not black)`);
    const want = { x: (start.x + 0.5) * SCALE - 0.5, y: (start.y + 0.5 - crop) * SCALE - 0.5 };
    assert.ok(
      Math.abs(p.x - want.x) <= 6 && Math.abs(p.y - want.y) <= 6,
      `${who}: block at (${p.x.toFixed(1)}, ${p.y.toFixed(1)}), expected about (${want.x}, ${want.y})`,
    );
  }

  await sleep(1200); // the worker exports its counters once a second
  const metricsAddr = / metrics=(\S+)/.exec(worker.output)?.[1];
  assert.ok(metricsAddr, 'the worker logs its metrics address');
  const metrics = await (await fetch(`http://${metricsAddr}/metrics`)).text();
  const converted = /retrofarm_gpu_frames_converted_total\{gpu="(\d+)"\} (\d+)/.exec(metrics);
  assert.ok(converted && Number(converted[2]) > 0, 'frames are counted as converted on the GPU');
  assert.match(metrics, new RegExp(`retrofarm_gpu_info\\{device="llvmpipe[^"]*",gpu="${converted[1]}"\\} 1`));
  const nvenc = /retrofarm_frames_encoded_total\{encoder="nvenc",gpu="\d+"\} (\d+)/.exec(metrics);
  assert.ok(nvenc && Number(nvenc[1]) > 0, 'frames are counted as encoded by nvenc on the GPU');
  const zeroCopy = /retrofarm_nvenc_zero_copy_frames_total (\d+)/.exec(metrics);
  assert.ok(zeroCopy && Number(zeroCopy[1]) > 0, 'NVENC read the pictures in GPU memory (zero-copy)');
});
