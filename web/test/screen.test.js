// @vitest-environment happy-dom
// The page wiring (screen.js) on the real page's markup, with a fake gateway (fetch), a fake map whose
// overlay records the layer descriptors it is given, and the real LiveFeed over a fake socket.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LiveFeed } from '../src/live-feed.js';
import { Screen } from '../src/screen.js';
import { A, B, BODY, C, CONFIG, FakeSocket, fakeGateway, FRAME, HttpStatus, NOW, W } from './page-fixtures.js';

const DECK_TYPES = ['H3HexagonLayer', 'ArcLayer', 'PathLayer', 'TextLayer']; // what main.js can build

function fakeMap() {
  const map = {
    zoom: 11, box: [113.4, 22.4, 113.7, 22.7], handlers: {}, canvas: document.createElement('div'),
    getZoom: () => map.zoom,
    getBounds: () => ({ getWest: () => map.box[0], getSouth: () => map.box[1], getEast: () => map.box[2], getNorth: () => map.box[3] }),
    loaded: () => true,
    on: (event, fn) => (map.handlers[event] = fn),
    getCanvasContainer: () => map.canvas,
  };
  return map;
}

/** A timer queue run by hand: run() calls what is due and not cleared. */
function manualTimers() {
  const queue = [];
  return {
    queue,
    setTimeout: (fn, ms) => queue.push({ fn, ms, cleared: false }) - 1,
    clearTimeout: (id) => id != null && queue[id] && (queue[id].cleared = true),
    run: () => queue.splice(0).filter((t) => !t.cleared).forEach((t) => t.fn()),
  };
}

/** Start the page against a fake gateway; `replies` override its answers by path (HttpStatus = an error). */
async function open({ config = CONFIG, hash = '#token=tok', replies = {} } = {}) {
  document.body.innerHTML = BODY;
  FakeSocket.all = [];
  const { fetch, calls } = fakeGateway({ config, ...replies });
  const draws = [];
  const maps = [];
  const createMap = (city) => {
    maps.push({ city, map: fakeMap() });
    return { map: maps.at(-1).map, draw: (descriptors) => draws.push(descriptors) };
  };
  const feedTimers = manualTimers();
  const createFeed = (opts) => new LiveFeed({ ...opts, WebSocketImpl: FakeSocket, random: () => 0, ...feedTimers });
  const timers = manualTimers();
  const store = new Map();
  const storage = { setItem: (k, v) => store.set(k, v), getItem: (k) => store.get(k) ?? null };
  const location = { hash, pathname: '/', search: '', protocol: 'http:', host: 'screen.test' };
  const screen = new Screen({ document, location, history: { replaceState() {} }, storage, fetch, createMap, createFeed, ...timers });
  await screen.start();
  await settle();
  return { screen, calls, draws, maps, timers, feedTimers, map: maps[0]?.map, socket: FakeSocket.all[0] };
}

const settle = () => new Promise((ok) => setTimeout(ok, 0));
const $ = (id) => document.getElementById(id);
const text = (id) => $(id).textContent;
const lastDraw = (h) => h.draws.at(-1);
const layer = (h, id) => lastDraw(h).find((d) => d.props.id === id);
const lastSubscribe = (h) => h.socket.sent.filter((m) => m.type === 'subscribe').at(-1);

function change(node, value) {
  if (node.type === 'radio' || node.type === 'checkbox') node.checked = value;
  else node.value = value;
  node.dispatchEvent(new Event(node.type === 'range' ? 'input' : 'change'));
}

/** Open the page, open its socket and deliver FRAME (or `frame`); wait for it to be drawn. */
async function live(options = {}, frame = FRAME) {
  const h = await open(options);
  h.socket.open();
  h.socket.message(frame);
  await vi.waitFor(() => expect(h.screen.debug.frames.shown?.window_start_ms).toBe(frame.window_start_ms));
  await vi.waitFor(() => expect($('headline').querySelector('.figure-value')?.textContent).toBe('1,234'));
  return h;
}

beforeEach(() => vi.spyOn(console, 'error').mockImplementation(() => {}));
afterEach(() => vi.restoreAllMocks());

describe('controls', () => {
  it('are built from /api/v1/config, not from a list of the page\'s own', async () => {
    await open();
    const radios = [...document.querySelectorAll('#layer-choices input[name=layer]')];
    expect(radios.map((r) => [r.value, r.checked, r.parentElement.textContent])).toEqual([
      ['population', true, ' People present'], ['transit', false, ' Transit tap-ins'],
    ]);
    expect([...$('breakdown').options].map((o) => [o.value, o.textContent])).toEqual([['', 'total'], ['origin', 'home region'], ['line', 'line']]);
    expect($('category').disabled).toBe(true);

    const other = { ...CONFIG, layers: ['active', 'payments'], statistics: { active: { persons: [] }, payments: { amount_cny: ['category'] } }, breakdowns: { category: ['food'] } };
    const h = await open({ config: other });
    expect([...document.querySelectorAll('input[name=layer]')].map((r) => r.value)).toEqual(['active', 'payments']);
    expect([...$('breakdown').options].map((o) => o.value)).toEqual(['', 'category']);
    h.socket.open();
    expect(lastSubscribe(h).layers).toEqual(['active', 'payments']);
  });

  it('fill the categories of the chosen breakdown', async () => {
    await open();
    change($('breakdown'), 'origin');
    expect([...$('category').options].map((o) => [o.value, o.textContent])).toEqual([['', 'all'], ['east', 'east'], ['north', 'north']]);
    expect($('category').disabled).toBe(false);
    change($('breakdown'), '');
    expect($('category').disabled).toBe(true);
  });
});

describe('the live feed', () => {
  it('subscribes on open to the view and its surroundings, at the zoom\'s resolution, with every offered layer', async () => {
    const h = await open();
    expect(h.socket.url).toBe('ws://screen.test/ws/live');
    expect(h.socket.protocols).toEqual(['cityscreen.v1', 'bearer.tok']);
    h.socket.open();
    expect(h.socket.sent).toEqual([
      { type: 'subscribe', res: 7, layers: ['population', 'transit', 'flows'], bbox: [113.25, 22.25, 113.85, 22.85], breakdown: null },
    ]);
    expect(h.calls.find((c) => c.path === 'config').authorization).toBeNull();
    expect(h.calls.find((c) => c.path === 'totals').authorization).toBe('Bearer tok');
    expect(h.maps[0].city.name).toBe('Tiny');
    expect(text('city-name')).toBe('· Tiny');
  });

  it('says connecting, live, waiting, disconnected and reconnecting in the header', async () => {
    const h = await open();
    const status = () => [text('status'), $('status').dataset.state, $('status').className];
    expect(status()).toEqual(['connecting', 'connecting', 'status status-connecting']);
    h.socket.open();
    expect(status()).toEqual(['live', 'live', 'status status-live']);
    h.socket.message({ type: 'waiting' });
    expect(text('status')).toBe('live · waiting for first window');
    h.socket.close(1006);
    expect(status()).toEqual(['disconnected · retry in 0.3s', 'disconnected', 'status status-disconnected']);
    h.feedTimers.queue.filter((t) => t.ms < 1000).forEach((t) => t.fn());
    expect(text('status')).toBe('reconnecting (attempt 1)');
    expect(h.screen.debug.status).toBe('reconnecting');
  });

  it('draws a frame: deck.gl layers, headline, panels, legend and window', async () => {
    const h = await live();
    expect(text('status')).toBe('live');
    const drawn = lastDraw(h);
    expect(drawn.map((d) => d.props.id)).toEqual(['cells', 'provisional-hatch', 'district-borders', 'metro-lines', 'flows', 'district-names', 'line-names']);
    expect(drawn.every((d) => DECK_TYPES.includes(d.type))).toBe(true);
    expect(layer(h, 'cells').props.data).toEqual([
      { hex: A, value: 40, suppressed: false }, { hex: B, value: null, suppressed: true },
    ]);
    expect(layer(h, 'flows').props.data).toEqual(FRAME.flows);
    expect(typeof layer(h, 'cells').props.onHover).toBe('function');
    const figures = [...document.querySelectorAll('#headline .figure')].map((f) => f.dataset.key);
    expect(figures).toEqual(['population.persons', 'transit.tap_in']); // spend is not in the config
    expect(text('panel-busiest')).toContain('Busiest places · People present');
    expect(text('panel-busiest')).toContain('Centre · near Harbour station40');
    expect(text('panel-origins')).toContain('east30northhidden');
    expect(text('panel-privacy')).toContain('Every number covers at least 10 people.');
    expect($('legend').querySelector('.legend-title').textContent).toBe('People present (persons)');
    expect(text('window-label')).toBe('window 2026-12-05 11:03 Tiny time · 60s · res 7');
    expect(text('res-label')).toBe('H3 resolution 7 (follows zoom)');
    await vi.waitFor(() => expect($('scrubber').max).toBe('2'));
    expect($('scrubber').value).toBe('2');
  });

  it('draws each new frame, and asks for totals and windows again only for a new window', async () => {
    const h = await live();
    const asked = (path) => h.calls.filter((c) => c.path === path).length;
    const [totals, draws] = [asked('totals'), h.draws.length];
    const next = { ...FRAME, type: 'frame', cells: { [A]: { 'population.persons': 41 } } };
    h.socket.message(next);
    await vi.waitFor(() => expect(layer(h, 'cells').props.data).toEqual([{ hex: A, value: 41, suppressed: false }]));
    expect(asked('totals')).toBe(totals);
    h.socket.message({ ...next, window_start_ms: W + 60_000 });
    await vi.waitFor(() => expect(asked('totals')).toBe(totals + 1));
    expect(h.draws.length).toBeGreaterThan(draws);
  });
});

describe('changing the controls', () => {
  it('another layer draws that layer\'s values; the subscription already holds every layer', async () => {
    const h = await live();
    h.socket.sent.length = 0;
    change(document.querySelector('input[value=transit]'), true);
    expect(layer(h, 'cells').props.data.map((r) => r.value)).toEqual([3, 12]);
    expect(h.screen.debug.layers[0].key).toBe('transit.tap_in');
    expect($('legend').querySelector('.legend-title').textContent).toBe('Transit tap-ins (taps)');
    expect(text('panel-busiest')).toContain('Busiest places · Transit tap-ins');
    expect(h.socket.sent).toEqual([]);
  });

  it('hiding flows resubscribes without them and draws no arcs; hiding hexagons draws none', async () => {
    const h = await live();
    change($('toggle-flows'), false);
    expect(lastSubscribe(h)).toMatchObject({ res: 7, layers: ['population', 'transit'] });
    expect(layer(h, 'flows')).toBeUndefined();
    change($('toggle-hexes'), false);
    expect(layer(h, 'cells')).toBeUndefined();
    expect(h.screen.debug.layers).toEqual([]);
  });

  it('a breakdown resubscribes with it, and a category draws that part', async () => {
    const h = await live();
    change($('breakdown'), 'origin');
    expect(lastSubscribe(h)).toMatchObject({ breakdown: 'origin', layers: ['population', 'transit', 'flows'] });
    h.socket.message({ ...FRAME, breakdown: 'origin', cells: { [A]: { 'population.persons': 40, 'population.persons|origin=east': 30 } } });
    await vi.waitFor(() => expect(h.screen.debug.frames.shown.breakdown).toBe('origin'));
    change($('category'), 'east');
    expect(layer(h, 'cells').props.data).toEqual([{ hex: A, value: 30, suppressed: false }]);
    expect($('legend').querySelector('.legend-key').textContent).toBe('only home region: east');
  });

  it('the time scrubber pauses on a past window and goes back to live', async () => {
    const h = await live();
    await vi.waitFor(() => expect(h.screen.state.windows).toEqual([W - 60_000, W]));
    change($('scrubber'), '0');
    expect(text('scrubber-label')).toBe('11:02 Tiny time (paused)');
    await vi.waitFor(() => expect(layer(h, 'cells').props.data).toEqual([{ hex: A, value: 77, suppressed: false }]));
    expect(h.calls.map((c) => c.path)).toContain(`frames/${W - 60_000}?res=7&breakdown=`);
    expect(text('window-label')).toBe('window 2026-12-05 11:02 Tiny time · 60s · res 7');
    const draws = h.draws.length;
    h.socket.message({ ...FRAME, type: 'frame' }); // live frames are kept, not shown, while paused
    await settle();
    expect(h.draws.length).toBe(draws);
    change($('scrubber'), '2');
    expect(text('scrubber-label')).toBe('live');
    await vi.waitFor(() => expect(layer(h, 'cells').props.data.map((r) => r.value)).toEqual([40, null]));
  });
});

describe('following the map', () => {
  it('resubscribes once the view settles at a new resolution, not for a small pan', async () => {
    const h = await open();
    h.socket.open();
    h.map.box = [113.45, 22.45, 113.75, 22.75]; // still inside the padded box
    h.map.handlers.moveend();
    h.timers.run();
    expect(h.socket.sent).toHaveLength(1);
    h.map.zoom = 13;
    h.map.handlers.moveend();
    h.map.handlers.moveend(); // debounced: one resubscribe
    expect(h.socket.sent).toHaveLength(1);
    h.timers.run();
    expect(h.socket.sent).toHaveLength(2);
    expect(lastSubscribe(h)).toMatchObject({ res: 8, bbox: [113.3, 22.3, 113.9, 22.9] });
    await vi.waitFor(() => expect(h.calls.map((c) => c.path)).toContain('frames/windows?res=8'));
  });
});

describe('the hover tooltip', () => {
  it('shows the hovered cell with its breakdown, asked for once, and hides when the pointer leaves', async () => {
    const h = await live();
    layer(h, 'cells').props.onHover({ object: { hex: A, value: 40 }, x: 10, y: 20 });
    expect($('tooltip').hidden).toBe(false);
    expect($('tooltip').querySelector('.tooltip-title').textContent).toBe('Centre · near Harbour station');
    await vi.waitFor(() => expect($('tooltip').textContent).toContain('Home region: east 30 · 1 more hidden'));
    const asked = h.calls.filter((c) => c.path.startsWith(`frames/${W}?res=7&layers=population&breakdown=origin&bbox=`));
    expect(asked).toHaveLength(1);
    layer(h, 'cells').props.onHover({ object: { hex: A, value: 40 }, x: 12, y: 20 });
    expect(h.calls.filter((c) => asked.some((a) => a.path === c.path))).toHaveLength(1);
    h.map.canvas.dispatchEvent(new Event('mouseleave'));
    expect($('tooltip').hidden).toBe(true);
  });

  it('names both ends of a hovered flow', async () => {
    const h = await live();
    layer(h, 'flows').props.onHover({ object: FRAME.flows[0], x: 1, y: 1 });
    expect($('tooltip').querySelector('.tooltip-title').textContent).toBe('Centre · near Harbour station → Centre · near Hill station');
    layer(h, 'flows').props.onHover({ object: null });
    expect($('tooltip').hidden).toBe(true);
  });
});

describe('provisional values (the now layer)', () => {
  const PROVISIONAL_A = { hex: A, value: 1234, suppressed: false, provisional: true, sd: 37.6 };
  const PROVISIONAL_C = { hex: C, value: 56, suppressed: false, provisional: true, sd: 37.6 };
  /** NOW `ticks` 2 s ticks later, with A's value `a`. */
  const nowAt = (ticks, a = 1234) => ({ ...NOW, tick_ms: NOW.tick_ms + 2000 * ticks, cells: { ...NOW.cells, [A]: { 'population.persons': a } } });
  const hatched = (h) => [...new Set(layer(h, 'provisional-hatch').props.data.map((s) => s.hex))];
  const paneItems = () => [...document.querySelectorAll('#legend .legend-pane')].map((p) => p.textContent);

  async function withNow(message = NOW) {
    const h = await live();
    h.socket.message(message);
    await vi.waitFor(() => expect(h.screen.debug.provisional).toBe(true));
    return h;
  }

  it('are drawn hatched over the final frame, with how fresh they are and the budget meter', async () => {
    const h = await withNow();
    expect(layer(h, 'cells').props.data).toEqual([PROVISIONAL_A, { hex: B, value: null, suppressed: true }, PROVISIONAL_C]);
    expect(hatched(h)).toEqual([A, C]);
    expect(layer(h, 'provisional-hatch').props.data.every((s) => s.path.length === 2)).toBe(true);
    expect(h.screen.debug.frames.shown).toBe(h.screen.debug.frames.live); // the final frame shown stays the final one
    expect(text('window-label')).toBe('window 2026-12-05 11:03 Tiny time · 60s · res 7');
    expect([$('now-label').hidden, text('now-label')]).toEqual([false, 'provisional · as of 11:04:26']);
    expect($('budget').hidden).toBe(false);
    expect($('budget').querySelector('.budget-text').textContent).toBe('privacy budget today: ε 1.2 of 3.0');
    expect($('budget').title).toContain('resets when pseudonyms rotate');
    expect(paneItems()).toEqual(['provisional (updates every 2 s, noisy)', 'final (window closed)']);
    expect(text('status')).toBe('live');
  });

  it('update in place every tick: the same layers and arrays, never a draw without them, panels left alone', async () => {
    const h = await withNow();
    const [data, stripes, details] = [layer(h, 'cells').props.data, layer(h, 'provisional-hatch').props.data, $('panel-privacy').querySelector('details')];
    const from = h.draws.length;
    for (let i = 1; i <= 5; i += 1) h.socket.message(nowAt(i, 1234 + i));
    await vi.waitFor(() => expect(text('now-label')).toBe('provisional · as of 11:04:36'));
    const drawn = h.draws.slice(from);
    expect(drawn).toHaveLength(5);
    for (const d of drawn) {
      expect(d.map((l) => l.props.id)).toEqual(['cells', 'provisional-hatch', 'district-borders', 'metro-lines', 'flows', 'district-names', 'line-names']);
      expect(d[0].props.data).toBe(data); // values changed in place: deck.gl keeps the hexagons' geometry
      expect(d[1].props.data).toBe(stripes);
    }
    expect(data[0]).toEqual({ ...PROVISIONAL_A, value: 1239 });
    expect(new Set(drawn.map((d) => JSON.stringify(d[0].props.updateTriggers.getFillColor))).size).toBe(5);
    expect($('panel-privacy').querySelector('details')).toBe(details); // an open <details> stays open
  });

  it('stay drawn when a final frame arrives: the cells without a provisional value show it, solid', async () => {
    const h = await withNow(nowAt(32)); // 11:05:30, in the window after the next final one
    const from = h.draws.length;
    const next = { ...FRAME, type: 'frame', window_start_ms: W + 60_000, cells: { [A]: { 'population.persons': 1200 }, [B]: { 'population.persons': 15 } } };
    h.socket.message(next);
    await vi.waitFor(() => expect(text('window-label')).toBe('window 2026-12-05 11:04 Tiny time · 60s · res 7'));
    for (const d of h.draws.slice(from)) expect(d[0].props.data.find((r) => r.hex === A)).toEqual(PROVISIONAL_A);
    expect(layer(h, 'cells').props.data).toEqual([PROVISIONAL_A, { hex: B, value: 15, suppressed: false }, PROVISIONAL_C]);
    expect(hatched(h)).toEqual([A, C]);
    expect(text('now-label')).toBe('provisional · as of 11:05:30');
  });

  it('give way to a final frame newer than they are (the provisional feed stopped)', async () => {
    const h = await withNow();
    h.socket.message({ ...FRAME, type: 'frame', window_start_ms: W + 120_000 });
    await vi.waitFor(() => expect(h.screen.debug.provisional).toBe(false));
    expect(layer(h, 'cells').props.data).toEqual([{ hex: A, value: 40, suppressed: false }, { hex: B, value: null, suppressed: true }]);
    expect(layer(h, 'provisional-hatch').props.data).toEqual([]);
    expect($('now-label').hidden).toBe(true);
    expect(paneItems()).toEqual(['final (window closed)']);
  });

  it('are not drawn for another layer or a breakdown, and the legend says why', async () => {
    const h = await withNow();
    change(document.querySelector('input[value=transit]'), true);
    expect(layer(h, 'cells').props.data).toEqual([{ hex: A, value: 3, suppressed: false }, { hex: B, value: 12, suppressed: false }]);
    expect(layer(h, 'provisional-hatch').props.data).toEqual([]);
    expect($('now-label').hidden).toBe(true);
    expect(text('legend')).toContain('provisional values are only for people present');
    h.socket.message(nowAt(1)); // still kept: the meter follows, nothing provisional is drawn
    await vi.waitFor(() => expect(h.screen.debug.frames.now.tick_ms).toBe(NOW.tick_ms + 2000));
    expect(layer(h, 'provisional-hatch').props.data).toEqual([]);
    change(document.querySelector('input[value=population]'), true);
    expect(hatched(h)).toEqual([A, C]);
    change($('breakdown'), 'origin');
    expect(layer(h, 'cells').props.data.some((r) => r.provisional)).toBe(false);
    expect(text('legend')).toContain('provisional values have no breakdown: final values only');
    change($('breakdown'), '');
    expect(hatched(h)).toEqual([A, C]);
  });

  it('are not drawn on a paused window; meanwhile only the budget meter follows', async () => {
    const h = await withNow();
    await vi.waitFor(() => expect(h.screen.state.windows).toEqual([W - 60_000, W]));
    change($('scrubber'), '0');
    await vi.waitFor(() => expect(layer(h, 'cells').props.data).toEqual([{ hex: A, value: 77, suppressed: false }]));
    expect(layer(h, 'provisional-hatch').props.data).toEqual([]);
    expect(text('legend')).toContain('paused: final values only');
    const draws = h.draws.length;
    h.socket.message({ ...nowAt(1), budget: { ...NOW.budget, epsilon_spent: 1.3 } });
    await vi.waitFor(() => expect($('budget').querySelector('.budget-text').textContent).toBe('privacy budget today: ε 1.3 of 3.0'));
    expect(h.draws.length).toBe(draws);
    change($('scrubber'), '2');
    await vi.waitFor(() => expect(hatched(h)).toEqual([A, C]));
  });

  it('are drawn before the first final frame, and not at another resolution than the view', async () => {
    const h = await open();
    h.socket.open();
    h.socket.message({ type: 'waiting', res: 7 });
    h.socket.message(NOW);
    await vi.waitFor(() => expect(layer(h, 'cells').props.data).toEqual([PROVISIONAL_A, PROVISIONAL_C]));
    expect(text('window-label')).toBe('no window yet');
    expect(text('status')).toBe('live');
    h.socket.message({ ...NOW, res: 8, cells: { [A]: { 'population.persons': 5 } } }); // of a view the page has left
    await vi.waitFor(() => expect(h.screen.debug.provisional).toBe(false));
    expect(layer(h, 'cells').props.data).toEqual([]);
  });

  it('show in the tooltip with their 90% interval; a final cell says final', async () => {
    const h = await withNow();
    layer(h, 'cells').props.onHover({ object: { hex: A }, x: 10, y: 20 });
    expect($('tooltip').textContent).toContain('≈ 1,234 people (provisional; 90% interval 1,172–1,296)');
    expect($('tooltip').querySelector('.tooltip-pane').textContent).toBe('provisional (updates every 2 s, noisy)');
    h.socket.message(nowAt(1, 2000));
    await vi.waitFor(() => expect($('tooltip').textContent).toContain('≈ 2,000 people (provisional; 90% interval 1,938–2,062)'));
    layer(h, 'cells').props.onHover({ object: { hex: B }, x: 10, y: 20 });
    expect($('tooltip').querySelector('.tooltip-pane').textContent).toBe('final (window closed)');
    expect($('tooltip').textContent).toContain('People presenthidden');
  });
});

describe('access and failures', () => {
  it('a 401 from the API shows the token refused', async () => {
    const h = await open({ replies: { totals: new HttpStatus(401) } });
    expect(text('status')).toBe('token refused');
    expect($('status').dataset.state).toBe('unauthorized');
    expect($('notice').hidden).toBe(false);
    expect(text('notice')).toBe('The operator token was refused. Open the map URL printed by cityscreen up.');
    expect(h.screen.debug.status).toBe('unauthorized');
  });

  it('a refused start says the token was refused, not that it could not start', async () => {
    const h = await open({ replies: { config: new HttpStatus(401) } });
    expect(text('status')).toBe('token refused');
    expect(text('notice')).toContain('operator token was refused');
    expect(h.maps).toEqual([]);
  });

  it('without a token it draws the base map, says so, and opens no socket', async () => {
    const h = await open({ hash: '' });
    expect(h.maps).toHaveLength(1);
    expect(FakeSocket.all).toEqual([]);
    expect(text('status')).toBe('token refused');
    expect(text('notice')).toContain('No operator token.');
    expect(document.querySelectorAll('input[name=layer]')).toHaveLength(0);
  });

  it('any other failure to start is shown', async () => {
    await open({ replies: { config: new HttpStatus(500) } });
    expect($('notice').hidden).toBe(false);
    expect(text('notice')).toBe('Could not start: config: HTTP 500');
    expect(text('status')).toBe('connecting');
  });
});
