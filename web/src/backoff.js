// Reconnect delays: exponential with jitter, capped, so a restarted gateway is not stampeded.

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 15000;

/** Delay before reconnect attempt `attempt` (0-based); `random` in [0, 1) spreads clients out. */
export function backoffMs(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
