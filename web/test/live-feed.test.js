import { describe, expect, it } from 'vitest';
import { backoffMs, BACKOFF_CAP_MS } from '../src/backoff.js';
import { LiveFeed, SUBPROTOCOL, liveUrl } from '../src/live-feed.js';
import { FakeSocket } from './page-fixtures.js';

function makeFeed(overrides = {}) {
  FakeSocket.all = [];
  const timers = [];
  const statuses = [];
  const messages = [];
  const feed = new LiveFeed({
    url: 'ws://h/ws/live', token: 'tok', WebSocketImpl: FakeSocket, random: () => 0,
    setTimeout: (fn, ms) => timers.push({ fn, ms }) - 1, clearTimeout: () => {},
    onStatus: (s) => statuses.push(s), onMessage: (m) => messages.push(m), ...overrides,
  });
  return { feed, timers, statuses, messages };
}

describe('backoff', () => {
  it('grows, is capped, and is jittered in [ceiling/2, ceiling]', () => {
    expect([0, 1, 2].map((a) => backoffMs(a, () => 0))).toEqual([250, 500, 1000]);
    expect(backoffMs(30, () => 0.999)).toBeLessThanOrEqual(BACKOFF_CAP_MS);
    expect(backoffMs(0, () => 0.999)).toBeGreaterThan(backoffMs(0, () => 0));
  });
});

describe('LiveFeed', () => {
  it('offers the token as a subprotocol and subscribes on open', () => {
    const { feed, messages } = makeFeed();
    feed.subscription = { res: 7 };
    feed.start();
    const ws = FakeSocket.all[0];
    expect(ws.protocols).toEqual([SUBPROTOCOL, 'bearer.tok']);
    ws.open();
    expect(ws.sent).toEqual([{ type: 'subscribe', res: 7 }]);
    ws.message({ type: 'snapshot', res: 7 });
    expect(messages).toEqual([{ type: 'snapshot', res: 7 }]);
  });

  it('reconnects with growing backoff and resubscribes', () => {
    const { feed, timers, statuses } = makeFeed();
    feed.subscription = { res: 6 };
    feed.start();
    FakeSocket.all[0].open();
    FakeSocket.all[0].close(1006);
    const retries = timers.filter((t) => t.ms < 60000);
    expect(retries.at(-1).ms).toBe(250);
    expect(statuses.at(-1)).toMatchObject({ state: 'disconnected', retryInMs: 250 });
    retries.at(-1).fn();
    FakeSocket.all[1].close(1006);
    expect(timers.filter((t) => t.ms < 60000).at(-1).ms).toBe(500);
    timers.filter((t) => t.ms < 60000).at(-1).fn();
    FakeSocket.all[2].open();
    expect(FakeSocket.all[2].sent).toEqual([{ type: 'subscribe', res: 6 }]);
  });

  it('does not reconnect after stop', () => {
    const { feed, timers } = makeFeed();
    feed.start();
    FakeSocket.all[0].open();
    const before = timers.length;
    feed.stop();
    expect(timers.length).toBe(before);
  });

  it('derives the socket URL from the page', () => {
    expect(liveUrl({ protocol: 'https:', host: 'x:1' })).toBe('wss://x:1/ws/live');
    expect(liveUrl({ protocol: 'http:', host: 'x:1' })).toBe('ws://x:1/ws/live');
  });
});
