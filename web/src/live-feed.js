// The live websocket: subscribe, receive snapshot then frames, reconnect with backoff, watch heartbeats.
// The token travels as a subprotocol ("bearer.<token>"): browsers cannot set headers on a WebSocket.

import { backoffMs } from './backoff.js';

export const SUBPROTOCOL = 'cityscreen.v1';

export function liveUrl(location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws/live`;
}

export class LiveFeed {
  /**
   * @param {object} opts url, token, onMessage(msg), onStatus({state, attempt, retryInMs}),
   *   heartbeatS (silence longer than 3x this is a dead socket), and for tests WebSocketImpl,
   *   setTimeout/clearTimeout and random.
   */
  constructor(opts) {
    this.opts = {
      heartbeatS: 15,
      WebSocketImpl: globalThis.WebSocket,
      // wrapped: browsers throw "Illegal invocation" when timers are called as methods of another object
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (id) => globalThis.clearTimeout(id),
      random: Math.random,
      ...opts,
    };
    this.subscription = null;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.watchdog = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.opts.clearTimeout(this.timer);
    this.opts.clearTimeout(this.watchdog);
    this.ws?.close(1000, 'client stopped');
  }

  subscribe(subscription) {
    this.subscription = subscription;
    this.send({ type: 'subscribe', ...subscription });
  }

  send(message) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(message));
  }

  status(state, extra = {}) {
    this.opts.onStatus?.({ state, attempt: this.attempt, ...extra });
  }

  connect() {
    const { WebSocketImpl, url, token } = this.opts;
    this.status(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const ws = new WebSocketImpl(url, [SUBPROTOCOL, `bearer.${token}`]);
    this.ws = ws;
    ws.onopen = () => {
      this.status('live');
      if (this.subscription) this.send({ type: 'subscribe', ...this.subscription });
      this.armWatchdog();
    };
    ws.onmessage = (event) => {
      this.attempt = 0;
      this.armWatchdog();
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      this.opts.onMessage?.(msg);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.opts.clearTimeout(this.watchdog);
      if (this.stopped) return this.status('stopped');
      const retryInMs = backoffMs(this.attempt, this.opts.random);
      this.attempt += 1;
      this.status('disconnected', { code: event?.code, retryInMs });
      this.timer = this.opts.setTimeout(() => this.connect(), retryInMs);
    };
    ws.onerror = () => {}; // onclose follows and schedules the retry
  }

  armWatchdog() {
    this.opts.clearTimeout(this.watchdog);
    this.watchdog = this.opts.setTimeout(() => this.ws?.close(4000, 'heartbeat missed'), 3000 * this.opts.heartbeatS);
  }
}
