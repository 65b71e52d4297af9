// The latency check: GET each worker's ping URL and report milliseconds per worker id.

/** Per-request timeout: a worker that takes longer is left out of the answer. */
export const PING_TIMEOUT_MS = 1500;

/** Rounds per worker; the first also opens the TCP connection, so the best round counts. */
export const PING_ROUNDS = 2;

/** One timed GET; resolves to milliseconds, or null on failure or timeout. */
export async function pingOnce(url, timeoutMs = PING_TIMEOUT_MS) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const started = performance.now();
  try {
    const res = await fetch(url, { cache: 'no-store', mode: 'cors', signal: abort.signal });
    if (!res.ok) return null;
    return performance.now() - started;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Pings every worker (`[{id, ping_url}]`) in parallel, `rounds` times each, and returns
 * `{id: ms}` with the best round per worker; workers that never answered are left out.
 */
export async function measureLatency(workers, { rounds = PING_ROUNDS, timeoutMs = PING_TIMEOUT_MS } = {}) {
  const entries = await Promise.all(
    workers.map(async ({ id, ping_url: url }) => {
      let best = null;
      for (let i = 0; i < rounds; i++) {
        const ms = await pingOnce(url, timeoutMs);
        if (ms === null) break; // a failed or timed-out worker is not retried
        best = best === null ? ms : Math.min(best, ms);
      }
      return [id, best];
    }),
  );
  const results = {};
  for (const [id, ms] of entries) {
    if (ms !== null) results[id] = Math.max(0, Math.round(ms));
  }
  return results;
}
