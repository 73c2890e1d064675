// What the page tests share: the real page's markup, a tiny city, a config, frames and totals as the
// gateway sends them, a fake gateway behind fetch, and a fake WebSocket.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cellToLatLng, latLngToCell } from 'h3-js';

// index.html without its script: a renamed element id fails here as it would in the browser
const PAGE = readFileSync(fileURLToPath(import.meta.resolve('../index.html')), 'utf8');
export const BODY = PAGE.slice(PAGE.indexOf('<body>') + 6, PAGE.indexOf('</body>')).replace(/<script[\s\S]*?<\/script>/g, '');

export const A = latLngToCell(22.5, 113.5, 7);
export const B = latLngToCell(22.6, 113.6, 7);
const [A_LAT, A_LNG] = cellToLatLng(A);
export const CITY = {
  name: 'Tiny', utc_offset_h: 8, bbox: { min_lat: 22, max_lat: 23, min_lng: 113, max_lng: 114 },
  outline: [[113, 22], [114, 22], [114, 23], [113, 23]],
  districts: [{ id: 'c', name: 'Centre', center: [113.5, 22.5], polygon: [[113, 22], [114, 22], [114, 23], [113, 23]] }],
  metro_lines: [{ id: 'L1', name: 'Line 1 (Loop)', color: '#ff0000', stations: [{ id: 'h', name: 'Harbour', lat: A_LAT, lng: A_LNG }, { id: 'k', name: 'Hill', lat: 22.6, lng: 113.6 }] }],
};
// deliberately not the gateway's usual set: the page must offer what the config says
export const CONFIG = {
  resolutions: [8, 7, 6], window_s: 60, heartbeat_s: 5, layers: ['population', 'transit', 'flows'],
  statistics: { population: { persons: ['origin'] }, transit: { tap_in: ['line'] } },
  breakdowns: { origin: ['east', 'north'], line: ['L1'] },
};
export const MANIFEST = { k: 10, window_s: 60, dp_enabled: false, mechanism: 'threshold', rules: [] };
export const W = Date.UTC(2026, 11, 5, 3, 3); // 11:03 in the city
export const FRAME = {
  type: 'snapshot', res: 7, window_start_ms: W, window_s: 60, privacy: { min_persons: 10 },
  cells: { [A]: { 'population.persons': 40, 'transit.tap_in': 3 }, [B]: { 'population.persons': null, 'transit.tap_in': 12 } },
  flows: [{ origin: A, dest: B, kind: 'movement', persons: 25 }],
};
// a provisional `now` message of the open window after FRAME's: A holds a value, B is under the
// threshold (null), C has a value only here
export const C = latLngToCell(22.55, 113.55, 7);
export const NOW = {
  type: 'now', pane: 'early', res: 7, window_start_ms: W + 60_000, window_s: 60, tick_ms: W + 86_000, published_ms: W + 87_200,
  privacy: { min_persons: 10, dp_enabled: true, epsilon: 3.0, mechanism: 'continual-tree' },
  cells: { [A]: { 'population.persons': 1234.0 }, [B]: { 'population.persons': null }, [C]: { 'population.persons': 56.0 } },
  noise_sd: { [A]: 37.6, [B]: 37.6, [C]: 37.6 },
  budget: { period_start_ms: W - 7 * 3_600_000 - 3 * 60_000, epsilon_per_person_day: 3.0, delta: 1e-6, rho_per_person_day: 0.147, rho_spent: 0.05, epsilon_spent: 1.2 },
};
export const TOTALS = {
  res: 6,
  windows: [{ window_start_ms: W, window_s: 60, totals: { 'population.persons': 1234, 'transit.tap_in': 30 }, suppressed_cells: { 'population.persons': 1 } }],
};
/** An error answer of the fake gateway (fakeGateway replies). */
export class HttpStatus {
  constructor(status) {
    this.status = status;
  }
}

/** frames/{at}: breakdowns for the side panels and the tooltip, else a past window with one cell. */
function frameReply(path) {
  const url = new URL(path, 'http://gateway/');
  const breakdown = url.searchParams.get('breakdown');
  if (breakdown === 'origin') {
    return { res: 6, window_start_ms: W, cells: { [A]: { 'population.persons': 40, 'population.persons|origin=east': 30, 'population.persons|origin=north': null } } };
  }
  if (breakdown === 'line' || breakdown === 'category') return { res: 6, window_start_ms: W, cells: {} };
  const at = Number(url.pathname.split('/').at(-1));
  return { res: 7, window_start_ms: at, window_s: 60, cells: { [A]: { 'population.persons': 77 } }, flows: [] };
}

export class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    Object.assign(this, { url, protocols, sent: [], readyState: 0 });
    FakeSocket.all.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code) { this.readyState = 3; this.onclose?.({ code }); }
  open() { this.readyState = 1; this.onopen?.(); }
  message(msg) { this.onmessage?.({ data: JSON.stringify(msg) }); }
}

/**
 * fetch for `./api/v1/...` answering from the fixtures; `replies` override by path without the query
 * (an HttpStatus answers with that error). `calls` records each path and its Authorization header.
 */
export function fakeGateway(replies = {}) {
  const routes = { config: CONFIG, 'privacy/manifest': MANIFEST, city: CITY, totals: TOTALS, 'frames/windows': { window_starts_ms: [W - 60_000, W] }, ...replies };
  const calls = [];
  const fetch = async (url, init = {}) => {
    const path = url.replace('./api/v1/', '');
    calls.push({ path, authorization: init.headers?.Authorization ?? null });
    const base = path.split('?')[0];
    const body = base in routes ? routes[base] : base.startsWith('frames/') ? frameReply(path) : new HttpStatus(404);
    if (body instanceof HttpStatus) return { status: body.status, ok: false, json: async () => ({}) };
    return { status: 200, ok: true, json: async () => structuredClone(body) };
  };
  return { fetch, calls };
}
