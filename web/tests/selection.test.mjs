// (c) Worker selection: the zone parameter limits the candidates, and within a zone the worker
// with the lowest measured ping wins.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { launchBrowser, openPage, scenario, startCluster, waitForState } from './harness.mjs';

let cluster;
let browser;

before(async () => {
  [cluster, browser] = await Promise.all([
    startCluster({
      workers: [
        { id: 'eu-fast', zone: 'eu' },
        { id: 'eu-slow', zone: 'eu', extra: ['--ping-delay-ms', '300'] },
        { id: 'us-1', zone: 'us' },
      ],
    }),
    launchBrowser(),
  ]);
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

async function chosen(query) {
  const { page, context } = await openPage(browser, `${cluster.url}/${query}`);
  try {
    const s = await waitForState(page, (s) => s.phase === 'choosing' && !!s.worker, { what: 'init' });
    assert.equal(await page.locator('#worker-id').textContent(), s.worker.id, 'the page shows the chosen worker');
    return s;
  } finally {
    await context.close();
  }
}

scenario('?zone= picks a worker of that zone', async () => {
  const us = await chosen('?zone=us');
  assert.deepEqual(us.worker, { id: 'us-1', zone: 'us' });
  assert.deepEqual(Object.keys(us.latency).sort(), ['us-1'], 'only the zone\'s workers are pinged');

  const eu = await chosen('?zone=eu');
  assert.equal(eu.worker.zone, 'eu');
  assert.deepEqual(Object.keys(eu.latency).sort(), ['eu-fast', 'eu-slow']);
});

scenario('within a zone, the worker with the lower measured ping is chosen', async () => {
  const s = await chosen('?zone=eu');
  assert.ok(s.latency['eu-slow'] >= 300, `eu-slow answers pings after 300 ms: ${JSON.stringify(s.latency)}`);
  assert.ok(s.latency['eu-fast'] < s.latency['eu-slow'], JSON.stringify(s.latency));
  assert.equal(s.worker.id, 'eu-fast');
});
