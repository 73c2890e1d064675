// The page's wiring: load config, manifest and city; draw the base map; follow the live feed; render
// the headline figures, panels, legend and hover tooltip from the pure modules. What touches the outside
// world is handed in (fetch, the map with its deck.gl overlay, the live feed, the document), so the
// wiring runs under vitest without WebGL or a socket; main.js hands in the real ones.

import { cellToLatLng } from 'h3-js';
import { takeToken } from './auth.js';
import { contextLayers } from './basemap.js';
import { bindControls } from './controls.js';
import { localTime } from './format.js';
import { makeHatch, makeStableRows } from './hatch.js';
import { Hover } from './hover.js';
import { layerMetrics, resForZoom, statKey } from './layers.js';
import { liveUrl } from './live-feed.js';
import { usableNow } from './now.js';
import { makePlaces } from './places.js';
import { drawBudget, drawHeadline, render, renderMap } from './screen-draw.js';
import { showNotice, showStatus } from './status.js';
import { inside, paddedBBox, subscriptionFor, viewOf } from './viewport.js';

export const SUBSCRIBE_DEBOUNCE_MS = 250;
export const UNAUTHORIZED = 'unauthorized';
export const TOKEN_REFUSED = 'The operator token was refused. Open the map URL printed by <code>cityscreen up</code>.';
export const NO_TOKEN = 'No operator token. Open the map URL printed by <code>cityscreen up</code> (it ends in <code>#token=…</code>).';

/** What the page exposes for browser tests as window.__cityscreen (see web/README.md). */
export const newDebug = () => ({ frames: { live: null, shown: null, now: null }, layers: [], status: 'connecting', messages: 0, provisional: false });

/** hex -> [lng, lat] of its centre, kept. */
function cellCenters() {
  const cache = new Map();
  return (hex) => {
    if (!cache.has(hex)) {
      const [lat, lng] = cellToLatLng(hex);
      cache.set(hex, [lng, lat]);
    }
    return cache.get(hex);
  };
}

export class Screen {
  /**
   * @param {object} io document; location, history, storage (sessionStorage) for the token; fetch(url,
   *   init); createMap(city) -> {map (MapLibre), draw(layer descriptors) (the deck.gl overlay)};
   *   createFeed(opts) -> a LiveFeed; optional debug (window.__cityscreen) and setTimeout/clearTimeout.
   */
  constructor(io) {
    this.io = { setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms), clearTimeout: (id) => globalThis.clearTimeout(id), ...io };
    this.doc = io.document;
    this.debug = io.debug ?? newDebug();
    this.state = {
      layer: 'population', showHexes: true, showFlows: true, breakdown: null, category: null,
      statistics: {}, res: null, bbox: null, windows: [], scrubIndex: null,
    };
    this.panelFrames = {};
    this.totals = { res: null, windows: [] };
    this.centerOf = cellCenters();
    this.stableRows = makeStableRows(); // the hexagons' rows, changed in place while the same cells are drawn
    this.hatch = makeHatch(); // the stripes over provisional cells
    this.hover = new Hover(this);
    this.subscribeTimer = null;
  }

  $(id) {
    return this.doc.getElementById(id);
  }

  /** Start the page; a failure shows a notice (a refused token has said so already). */
  async start() {
    try {
      await this.boot();
    } catch (err) {
      if (err.message !== UNAUTHORIZED) this.notice(`Could not start: ${err.message}`);
      console.error(err);
    }
  }

  async boot() {
    const { location, history, storage } = this.io;
    this.token = takeToken(location, history, storage);
    await this.load();
    this.view = this.io.createMap(this.city);
    this.map = this.debug.map = this.view.map;
    if (!this.token) {
      this.status({ state: UNAUTHORIZED });
      return this.notice(NO_TOKEN);
    }
    this.feed = this.debug.feed = this.io.createFeed({
      url: liveUrl(location), token: this.token, heartbeatS: this.config.heartbeat_s,
      onMessage: (msg) => this.onMessage(msg), onStatus: (s) => this.status(s),
    });
    bindControls(this.doc, { metrics: this.metrics, config: this.config, layer: this.state.layer }, this.handlers());
    await new Promise((ok) => (this.map.loaded() ? ok() : this.map.once('load', ok)));
    this.follow();
  }

  /** The gateway's config and privacy manifest, then the city. */
  async load() {
    [this.config, this.manifest] = await Promise.all([this.api('config'), this.api('privacy/manifest')]);
    this.state.statistics = this.config.statistics;
    this.metrics = layerMetrics(this.config.statistics);
    this.city = await this.api('city');
    this.places = makePlaces(this.city);
    this.context = contextLayers(this.city);
    this.$('city-name').textContent = `· ${this.city.name}`;
  }

  /** Subscribe to the view, start the feed, and follow the map as it moves. */
  follow() {
    this.state.res = resForZoom(this.map.getZoom(), this.config.resolutions);
    this.state.bbox = paddedBBox(viewOf(this.map));
    this.feed.subscription = this.debug.subscription = this.subscription();
    this.feed.start();
    this.refreshWindows().catch(() => {});
    this.refreshTotals().catch(() => {});
    this.map.on('moveend', () => this.followView());
    this.map.getCanvasContainer().addEventListener('mouseleave', () => this.hover.clear());
    this.render();
  }

  status(s) {
    showStatus(this.doc, s);
    this.debug.status = s.state;
  }

  notice(html) {
    showNotice(this.doc, html);
  }

  /** GET /api/v1/<path> as JSON; a 401 shows the token refused and throws. */
  async api(path, { auth = false } = {}) {
    const { fetch } = this.io;
    const r = await fetch(`./api/v1/${path}`, auth ? { headers: { Authorization: `Bearer ${this.token}` } } : {});
    if (r.status === 401) {
      this.status({ state: UNAUTHORIZED });
      this.notice(TOKEN_REFUSED);
      throw new Error(UNAUTHORIZED);
    }
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  shownFrame() {
    return this.state.scrubIndex === null ? this.debug.frames.live : this.debug.frames.scrubbed;
  }

  /** The last `now` message when its provisional values are to be drawn over the shown frame, else null. */
  nowShown() {
    return usableNow(this.debug.frames.now, this.shownFrame(), this.state);
  }

  privacyK() {
    return this.manifest?.k ?? this.manifest?.min_persons ?? this.shownFrame()?.privacy?.min_persons ?? null;
  }

  /** The breakdown dimensions the gateway offers for the metric of `layer`. */
  dimensionsOf(layer) {
    const [, metric] = this.metrics[layer].key.split('.');
    return this.config.statistics?.[layer]?.[metric] ?? [];
  }

  statKey() {
    const { layer, breakdown, category, statistics } = this.state;
    return statKey(layer, breakdown, category, statistics);
  }

  render() {
    render(this);
  }

  // ---- the feed and the view -------------------------------------------------------------------

  async onMessage(msg) {
    this.debug.messages += 1;
    if (msg.type === 'waiting') return this.status({ state: 'waiting' });
    if (msg.type === 'now') return this.onNow(msg);
    if (msg.type !== 'snapshot' && msg.type !== 'frame') return;
    const previous = this.debug.frames.live;
    this.debug.frames.live = msg;
    this.status({ state: 'live' });
    if (!previous || previous.window_start_ms !== msg.window_start_ms) {
      this.refreshWindows().catch(() => {});
      this.refreshTotals().catch(() => {});
      if (this.state.scrubIndex === null) await this.refreshPanelFrames(null);
    }
    if (this.state.scrubIndex === null) this.render();
  }

  /**
   * A provisional `now` message (every ~2 s): kept as the newest, and the map part redrawn in place
   * (the final frame stays as it is; the side panels and headline are not redrawn). While paused on
   * a past window only the budget meter follows.
   */
  onNow(msg) {
    this.debug.frames.now = msg;
    if (this.debug.status !== 'live') this.status({ state: 'live' });
    if (this.state.scrubIndex === null) renderMap(this);
    else drawBudget(this);
  }

  subscription() {
    return subscriptionFor(this.config.layers, this.state);
  }

  resubscribe() {
    const sub = this.subscription();
    this.debug.subscription = sub;
    this.feed.subscribe(sub);
  }

  /** After the map settles: resubscribe when the resolution changes or the view leaves the subscribed box. */
  followView() {
    const { setTimeout, clearTimeout } = this.io;
    clearTimeout(this.subscribeTimer);
    this.subscribeTimer = setTimeout(() => this.viewMoved(), SUBSCRIBE_DEBOUNCE_MS);
  }

  viewMoved() {
    const res = resForZoom(this.map.getZoom(), this.config.resolutions);
    if (res === this.state.res && inside(viewOf(this.map), this.state.bbox)) return;
    const resChanged = res !== this.state.res;
    this.state.res = res;
    this.state.bbox = paddedBBox(viewOf(this.map));
    this.resubscribe();
    if (resChanged) this.refreshWindows().catch(() => {});
  }

  // ---- windows, totals and the time scrubber --------------------------------------------------

  async refreshWindows() {
    const { window_starts_ms } = await this.api(`frames/windows?res=${this.state.res}`, { auth: true });
    this.state.windows = this.debug.windows = window_starts_ms;
    const s = this.$('scrubber');
    s.max = String(window_starts_ms.length);
    if (this.state.scrubIndex === null) s.value = s.max;
  }

  async refreshTotals() {
    this.totals = await this.api('totals', { auth: true });
    drawHeadline(this);
  }

  /** The city-wide origin and spend breakdowns of the side panels (coarsest resolution), at a window or the latest. */
  async refreshPanelFrames(windowStartMs) {
    const res = Math.min(...this.config.resolutions);
    const at = windowStartMs ?? 'latest';
    const [origin, category] = await Promise.all([
      this.api(`frames/${at}?res=${res}&layers=population&breakdown=origin`, { auth: true }).catch(() => null),
      this.api(`frames/${at}?res=${res}&layers=payments&breakdown=category`, { auth: true }).catch(() => null),
    ]);
    this.panelFrames = { origin, category };
  }

  /** Show the window the scrubber points at (paused), or the live feed at its right end. */
  async scrub() {
    const i = Number(this.$('scrubber').value);
    if (i >= this.state.windows.length) {
      this.state.scrubIndex = null;
      this.$('scrubber-label').textContent = 'live';
      await this.refreshPanelFrames(null);
    } else {
      this.state.scrubIndex = i;
      const at = this.state.windows[i];
      this.$('scrubber-label').textContent = `${localTime(at, this.city.utc_offset_h).time} ${this.city.name} time (paused)`;
      const q = `res=${this.state.res}&breakdown=${this.state.breakdown ?? ''}`;
      this.debug.frames.scrubbed = await this.api(`frames/${at}?${q}`, { auth: true });
      await this.refreshPanelFrames(at);
    }
    this.render();
  }

  /** What the controls do (controls.js passes plain values). */
  handlers() {
    const rerender = (change) => (value) => {
      change(value);
      this.render();
    };
    return {
      layer: rerender((layer) => (this.state.layer = layer)),
      hexes: rerender((shown) => (this.state.showHexes = shown)),
      category: rerender((category) => (this.state.category = category)),
      flows: rerender((shown) => {
        this.state.showFlows = shown;
        this.resubscribe();
      }),
      breakdown: (breakdown) => {
        Object.assign(this.state, { breakdown, category: null });
        this.resubscribe();
        // a paused window is fetched again with the new breakdown (the live feed brings its own); live,
        // the map drops (or takes back) the provisional values at once, as they have no breakdown
        if (this.state.scrubIndex !== null) this.scrub().catch(console.error);
        else this.render();
      },
      scrub: () => this.scrub().catch(console.error),
    };
  }
}
