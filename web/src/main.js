// Wiring: load config, city and manifest; draw the offline base map; follow the live feed; render the
// headline figures, panels, legend and hover tooltip from the pure modules.

import maplibregl from 'maplibre-gl';
import 'maplibre-gl/dist/maplibre-gl.css';
import { MapboxOverlay } from '@deck.gl/mapbox';
import { H3HexagonLayer } from '@deck.gl/geo-layers';
import { ArcLayer, PathLayer, TextLayer } from '@deck.gl/layers';
import { cellToLatLng } from 'h3-js';
import './style.css';
import { takeToken } from './auth.js';
import { cityBounds, cityStyle, contextLayers } from './basemap.js';
import { renderLegend, legendModel } from './legend.js';
import { ARC_LAYER_ID, breakdownChoices, buildLayers, HEX_LAYER_ID, layerMetrics, resForZoom, statKey } from './layers.js';
import { LiveFeed, liveUrl } from './live-feed.js';
import { categoryLabel, DIMENSION_LABELS, layerOf, localTime, pendingSpanText, spanLabel } from './format.js';
import { headlineModel, renderHeadline } from './headline.js';
import { renderPanels } from './panels.js';
import { makePlaces } from './places.js';
import { cellTooltip, flowTooltip, renderTooltip } from './tooltip.js';

const DECK_TYPES = { H3HexagonLayer, ArcLayer, PathLayer, TextLayer };
const SUBSCRIBE_DEBOUNCE_MS = 250;
// the whole city in view at start, clear of the panels over the map (controls, headline, side, legend)
const CITY_PADDING = { top: 140, left: 215, right: 300, bottom: 20 };
const HOVER_BBOX_DEG = 1e-4; // a box this wide around a cell's centre holds that cell only (the gateway cuts by centre)
const BBOX_PAD = 0.5; // subscribe to half a viewport around the view, so small pans need no resubscribe
// Set window.CITYSCREEN_BASEMAP_STYLE (a style URL) before main.js to use an online basemap instead.
const ONLINE_STYLE = globalThis.CITYSCREEN_BASEMAP_STYLE ?? null;

const $ = (id) => document.getElementById(id);
const debug = (globalThis.__cityscreen = { frames: { live: null, shown: null }, layers: [], status: 'connecting', messages: 0 });

const state = {
  layer: 'population', showHexes: true, showFlows: true, breakdown: null, category: null,
  statistics: {}, res: null, bbox: null, windows: [], scrubIndex: null,
};
let config, manifest, token, map, overlay, feed, city, places, metrics, context, panelFrames = {}, totals = { res: null, windows: [] };
let hover = null; // {kind: 'cell' | 'flow', object, x, y} under the pointer
const hoverBreakdowns = new Map(); // `${window}:${res}:${layer}:${hex}` -> {dimension: the cell's stats}

function setStatus(s) {
  const text = {
    connecting: 'connecting', live: 'live', waiting: 'live · waiting for first window',
    disconnected: `disconnected · retry in ${Math.round((s.retryInMs ?? 0) / 100) / 10}s`,
    reconnecting: `reconnecting (attempt ${s.attempt})`, unauthorized: 'token refused', stopped: 'stopped',
  }[s.state] ?? s.state;
  const el = $('status');
  el.textContent = text;
  el.dataset.state = s.state;
  el.className = `status status-${s.state}`;
  debug.status = s.state;
}

function notice(html) {
  $('notice').innerHTML = html;
  $('notice').hidden = false;
}

async function api(path, { auth = false } = {}) {
  const r = await fetch(`./api/v1/${path}`, auth ? { headers: { Authorization: `Bearer ${token}` } } : {});
  if (r.status === 401) {
    setStatus({ state: 'unauthorized' });
    notice('The operator token was refused. Open the map URL printed by <code>cityscreen up</code>.');
    throw new Error('unauthorized');
  }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

const centerOf = (() => {
  const cache = new Map();
  return (hex) => {
    if (!cache.has(hex)) {
      const [lat, lng] = cellToLatLng(hex);
      cache.set(hex, [lng, lat]);
    }
    return cache.get(hex);
  };
})();

function shownFrame() {
  return state.scrubIndex === null ? debug.frames.live : debug.frames.scrubbed;
}

function withHover(d) {
  return { ...d, props: { ...d.props, onHover: (info) => onHover(d.props.id, info) } };
}

function render() {
  const frame = shownFrame();
  debug.frames.shown = frame;
  const descriptors = buildLayers(frame, state, centerOf);
  const hex = descriptors.find((d) => d.props.id === HEX_LAYER_ID);
  const arcs = descriptors.find((d) => d.props.id === ARC_LAYER_ID);
  // district borders and metro lines over the hexagons, arcs over them, names on top
  const drawn = [hex && withHover(hex), ...context.lines, arcs && withHover(arcs), ...context.labels].filter(Boolean);
  overlay.setProps({ layers: drawn.map((d) => new DECK_TYPES[d.type](d.props)) });
  debug.layers = descriptors.map((d) => ({
    id: d.props.id, type: d.type, key: d.key ?? null, max: d.max ?? null, count: d.props.data.length,
    suppressed: d.props.data.filter((r) => r.suppressed).length, data: d.props.data.map((r) => ({ ...r })),
  }));
  const key = statKey(state.layer, state.breakdown, state.category, state.statistics);
  renderLegend($('legend'), legendModel(metrics[state.layer], key, hex?.max ?? 1, privacyK(), city.metro_lines, Boolean(hex?.props.data.some((r) => !r.suppressed)), spanLabel(frame, layerOf(key), city.utc_offset_h)));
  renderPanels(document, frame, { key, metric: metrics[state.layer], config, manifest, places, breakdownFrames: panelFrames, utcOffsetH: city.utc_offset_h });
  renderHeadlineFigures();
  showTooltip();
  if (frame) {
    const t = localTime(frame.window_start_ms, city.utc_offset_h);
    $('window-label').textContent = `window ${t.date} ${t.time} ${city.name} time · ${frame.window_s}s · res ${frame.res}`;
  }
  $('res-label').textContent = `H3 resolution ${state.res} (follows zoom)`;
}

const privacyK = () => manifest?.k ?? manifest?.min_persons ?? shownFrame()?.privacy?.min_persons ?? null;

function renderHeadlineFigures() {
  const models = headlineModel(totals.windows, { statistics: config.statistics, shownWindowMs: shownFrame()?.window_start_ms ?? null });
  debug.headline = models.map(({ key, label, text, value, windowStartMs, span }) => ({ key, label, text, value, windowStartMs, span }));
  const frame = shownFrame();
  const pending = Object.fromEntries(['payments', 'transit'].map((layer) => [layer, pendingSpanText(frame, layer, manifest?.layer_windows_s, city.utc_offset_h)]));
  renderHeadline(document, models, totals.res, city.utc_offset_h, pending);
}

async function refreshTotals() {
  totals = await api('totals', { auth: true });
  renderHeadlineFigures();
}

// ---- hover tooltip -----------------------------------------------------------------------------

function onHover(layerId, info) {
  const kind = layerId === HEX_LAYER_ID ? 'cell' : 'flow';
  if (!info.object) {
    if (hover?.kind === kind) hover = null;
  } else {
    const rect = $('map').getBoundingClientRect();
    hover = { kind, object: info.object, x: info.x + rect.left, y: info.y + rect.top };
    if (kind === 'cell') loadHoverBreakdowns(info.object.hex);
  }
  showTooltip();
}

const hoverId = (hex) => {
  const f = shownFrame();
  return `${f?.window_start_ms}:${f?.res}:${state.layer}:${hex}`;
};

function dimensionsOf(layer) {
  const [, metric] = metrics[layer].key.split('.');
  return config.statistics?.[layer]?.[metric] ?? [];
}

function loadHoverBreakdowns(hex) {
  const id = hoverId(hex);
  const frame = shownFrame();
  if (!frame || hoverBreakdowns.has(id)) return;
  hoverBreakdowns.set(id, null); // asked for
  const [lat, lng] = cellToLatLng(hex);
  const bbox = [lng - HOVER_BBOX_DEG, lat - HOVER_BBOX_DEG, lng + HOVER_BBOX_DEG, lat + HOVER_BBOX_DEG].join(',');
  const layer = state.layer;
  Promise.all(
    dimensionsOf(layer).map((dim) =>
      api(`frames/${frame.window_start_ms}?res=${frame.res}&layers=${layer}&breakdown=${dim}&bbox=${bbox}`, { auth: true })
        .then((f) => [dim, f.cells?.[hex] ?? {}])
        .catch(() => [dim, {}]),
    ),
  ).then((parts) => {
    hoverBreakdowns.set(id, Object.fromEntries(parts));
    if (hoverBreakdowns.size > 500) hoverBreakdowns.delete(hoverBreakdowns.keys().next().value);
    showTooltip();
  });
}

function showTooltip() {
  const node = $('tooltip');
  let model = null;
  // a new window or layer may no longer draw the hovered cell or arc: deck.gl only picks again on a move
  const drawnIds = debug.layers.find((l) => l.id === (hover?.kind === 'cell' ? HEX_LAYER_ID : ARC_LAYER_ID));
  const key = (r) => (hover?.kind === 'cell' ? r.hex : `${r.origin}>${r.dest}>${r.kind}`);
  if (hover && !drawnIds?.data.some((r) => key(r) === key(hover.object))) hover = null;
  if (hover?.kind === 'cell') {
    const hex = hover.object.hex;
    if (!hoverBreakdowns.has(hoverId(hex))) loadHoverBreakdowns(hex);
    const lineNames = Object.fromEntries([...city.metro_lines, ...(city.bus_lines ?? [])].map((l) => [l.id, l.name]));
    model = cellTooltip({
      hex, frame: shownFrame(), place: places.place(hex), metrics, layer: state.layer,
      breakdowns: hoverBreakdowns.get(hoverId(hex)) ?? null, dimensions: dimensionsOf(state.layer),
      categories: config.breakdowns, lineNames, k: privacyK(), dominanceShare: manifest?.dominance_share,
    });
  } else if (hover?.kind === 'flow') {
    model = flowTooltip(hover.object, places);
  }
  debug.tooltip = model;
  renderTooltip(node, model, hover?.x, hover?.y);
}

function subscription() {
  const data = config.layers.filter((l) => l !== 'flows');
  const layers = [...data, ...(state.showFlows && config.layers.includes('flows') ? ['flows'] : [])];
  return { res: state.res, layers, bbox: state.bbox, breakdown: state.breakdown };
}

function resubscribe() {
  const sub = subscription();
  debug.subscription = sub;
  feed.subscribe(sub);
}

function viewportBBox() {
  const b = map.getBounds();
  const [w, s, e, n] = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
  const [dx, dy] = [(e - w) * BBOX_PAD, (n - s) * BBOX_PAD];
  return [w - dx, s - dy, e + dx, n + dy].map((v) => Math.round(v * 1e4) / 1e4);
}

const inside = (inner, outer) => outer && inner[0] >= outer[0] && inner[1] >= outer[1] && inner[2] <= outer[2] && inner[3] <= outer[3];

let subscribeTimer = null;
function followView(force = false) {
  clearTimeout(subscribeTimer);
  subscribeTimer = setTimeout(() => {
    const res = resForZoom(map.getZoom(), config.resolutions);
    const b = map.getBounds();
    const view = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
    if (!force && res === state.res && inside(view, state.bbox)) return;
    const resChanged = res !== state.res;
    state.res = res;
    state.bbox = viewportBBox();
    resubscribe();
    if (resChanged) refreshWindows();
  }, force ? 0 : SUBSCRIBE_DEBOUNCE_MS);
}

async function refreshWindows() {
  const { window_starts_ms } = await api(`frames/windows?res=${state.res}`, { auth: true });
  state.windows = debug.windows = window_starts_ms;
  const s = $('scrubber');
  s.max = String(window_starts_ms.length);
  if (state.scrubIndex === null) s.value = s.max;
}

async function refreshPanelFrames(windowStartMs) {
  const res = Math.min(...config.resolutions);
  const at = windowStartMs ?? 'latest';
  const [origin, category] = await Promise.all([
    api(`frames/${at}?res=${res}&layers=population&breakdown=origin`, { auth: true }).catch(() => null),
    api(`frames/${at}?res=${res}&layers=payments&breakdown=category`, { auth: true }).catch(() => null),
  ]);
  panelFrames = { origin, category };
}

async function onMessage(msg) {
  debug.messages += 1;
  if (msg.type === 'waiting') return setStatus({ state: 'waiting' });
  if (msg.type !== 'snapshot' && msg.type !== 'frame') return;
  const previous = debug.frames.live;
  debug.frames.live = msg;
  setStatus({ state: 'live' });
  if (!previous || previous.window_start_ms !== msg.window_start_ms) {
    refreshWindows().catch(() => {});
    refreshTotals().catch(() => {});
    if (state.scrubIndex === null) await refreshPanelFrames(null);
  }
  if (state.scrubIndex === null) render();
}

async function scrub() {
  const s = $('scrubber');
  const i = Number(s.value);
  if (i >= state.windows.length) {
    state.scrubIndex = null;
    $('scrubber-label').textContent = 'live';
    await refreshPanelFrames(null);
  } else {
    state.scrubIndex = i;
    const at = state.windows[i];
    $('scrubber-label').textContent = `${localTime(at, city.utc_offset_h).time} ${city.name} time (paused)`;
    const q = `res=${state.res}&breakdown=${state.breakdown ?? ''}`;
    debug.frames.scrubbed = await api(`frames/${at}?${q}`, { auth: true });
    await refreshPanelFrames(at);
  }
  render();
}

function layerChoices() {
  $('layer-choices').replaceChildren(
    ...Object.entries(metrics).map(([layer, m]) => {
      const label = document.createElement('label');
      const radio = Object.assign(document.createElement('input'), { type: 'radio', name: 'layer', value: layer, checked: layer === state.layer });
      label.append(radio, ` ${m.label}`);
      return label;
    }),
  );
}

function bindControls() {
  layerChoices();
  const dims = breakdownChoices(config.statistics, config.breakdowns);
  $('breakdown').replaceChildren(new Option('total', ''), ...dims.map((d) => new Option((DIMENSION_LABELS[d] ?? d).toLowerCase(), d)));
  for (const radio of document.querySelectorAll('input[name=layer]')) {
    radio.addEventListener('change', () => { state.layer = radio.value; render(); });
  }
  $('toggle-hexes').addEventListener('change', (e) => { state.showHexes = e.target.checked; render(); });
  $('toggle-flows').addEventListener('change', (e) => {
    state.showFlows = e.target.checked;
    resubscribe();
    render();
  });
  $('breakdown').addEventListener('change', (e) => {
    state.breakdown = e.target.value || null;
    const cats = state.breakdown ? config.breakdowns[state.breakdown] ?? [] : [];
    const sel = $('category');
    sel.replaceChildren(...['', ...cats].map((c) => new Option(c ? categoryLabel(state.breakdown, c) : 'all', c)));
    sel.disabled = !cats.length;
    state.category = null;
    resubscribe();
    // a paused window is fetched again with the new breakdown (the live feed brings its own)
    if (state.scrubIndex !== null) scrub().catch(console.error);
  });
  $('category').addEventListener('change', (e) => { state.category = e.target.value || null; render(); });
  $('scrubber').addEventListener('input', () => scrub().catch(console.error));
}

async function main() {
  token = takeToken(window.location, window.history, window.sessionStorage);
  [config, manifest] = await Promise.all([api('config'), api('privacy/manifest')]);
  state.statistics = config.statistics;
  metrics = layerMetrics(config.statistics);
  city = await api('city');
  places = makePlaces(city);
  context = contextLayers(city);
  $('city-name').textContent = `· ${city.name}`;
  map = new maplibregl.Map({
    container: 'map', style: ONLINE_STYLE ?? cityStyle(city), bounds: cityBounds(city),
    fitBoundsOptions: { padding: CITY_PADDING }, attributionControl: false,
  });
  overlay = new MapboxOverlay({ interleaved: false, layers: [] });
  map.addControl(overlay);
  map.addControl(new maplibregl.NavigationControl(), 'bottom-right');
  debug.map = map;
  if (!token) {
    setStatus({ state: 'unauthorized' });
    notice('No operator token. Open the map URL printed by <code>cityscreen up</code> (it ends in <code>#token=…</code>).');
    return;
  }
  feed = new LiveFeed({ url: liveUrl(window.location), token, onMessage, onStatus: setStatus, heartbeatS: config.heartbeat_s });
  debug.feed = feed;
  bindControls();
  await new Promise((ok) => (map.loaded() ? ok() : map.once('load', ok)));
  state.res = resForZoom(map.getZoom(), config.resolutions);
  state.bbox = viewportBBox();
  feed.subscription = debug.subscription = subscription();
  feed.start();
  refreshWindows().catch(() => {});
  refreshTotals().catch(() => {});
  map.on('moveend', () => followView());
  map.getCanvasContainer().addEventListener('mouseleave', () => {
    hover = null;
    showTooltip();
  });
  render();
}

main().catch((err) => {
  if (err.message !== 'unauthorized') notice(`Could not start: ${err.message}`);
  console.error(err);
});
