// Drawing the page from the Screen's state (screen.js): the deck.gl layers over the map, the legend,
// the side panels, the headline figures, the window labels and the budget meter, each from its pure
// module. A `now` message (every ~2 s) redraws only what it changes: the map, legend, tooltip, labels.

import { budgetModel, renderBudget } from './budget.js';
import { layerOf, localTime, pendingSpanText, spanLabel } from './format.js';
import { headlineModel, renderHeadline } from './headline.js';
import { legendModel, renderLegend } from './legend.js';
import { ARC_LAYER_ID, buildLayers, HATCH_LAYER_ID, HEX_LAYER_ID } from './layers.js';
import { freshnessText, paneKey } from './now.js';
import { renderPanels } from './panels.js';

/** Draw everything from the shown frame (live, or the paused window) and the Screen `s`'s state. */
export function render(s) {
  const frame = renderMap(s);
  const { city, config, manifest, places } = s;
  renderPanels(s.doc, frame, {
    key: s.statKey(), metric: s.metrics[s.state.layer], config, manifest, places,
    breakdownFrames: s.panelFrames, utcOffsetH: city.utc_offset_h,
  });
  drawHeadline(s);
}

/**
 * What a `now` message changes, and the map part of every render: the layers (provisional values over
 * the shown frame), legend, tooltip, window labels and budget meter. The side panels and headline
 * figures hold final values only and are left alone. Returns the shown frame.
 */
export function renderMap(s) {
  const frame = s.shownFrame();
  const now = s.nowShown();
  s.debug.frames.shown = frame;
  s.debug.provisional = Boolean(now);
  const descriptors = buildLayers(frame, s.state, s.centerOf, { now, stable: s.stableRows, hatch: s.hatch });
  const hex = descriptors.find((d) => d.props.id === HEX_LAYER_ID);
  drawLayers(s, descriptors);
  drawLegend(s, frame, hex, now);
  s.hover.show();
  drawLabels(s, frame, now);
  drawBudget(s);
  return frame;
}

/** Hexagons, their hatching, district borders and metro lines over them, arcs over those, names on top. */
function drawLayers(s, descriptors) {
  const hex = descriptors.find((d) => d.props.id === HEX_LAYER_ID);
  const hatch = descriptors.find((d) => d.props.id === HATCH_LAYER_ID);
  const arcs = descriptors.find((d) => d.props.id === ARC_LAYER_ID);
  const { lines, labels } = s.context;
  s.view.draw([hex && s.hover.withHover(hex), hatch, ...lines, arcs && s.hover.withHover(arcs), ...labels].filter(Boolean));
  s.debug.layers = descriptors.map((d) => ({
    id: d.props.id, type: d.type, key: d.key ?? null, max: d.max ?? null, count: d.props.data.length,
    suppressed: d.props.data.filter((r) => r.suppressed).length, data: d.props.data.map((r) => ({ ...r })),
  }));
}

/** The colour scale of the hexagon layer `hex` (its descriptor), with k, the window it covers and what is provisional. */
function drawLegend(s, frame, hex, now) {
  const key = s.statKey();
  const released = Boolean(hex?.props.data.some((r) => !r.suppressed));
  const span = spanLabel(frame, layerOf(key), s.city.utc_offset_h, s.config.data_since_ms ?? null);
  const panes = paneKey({ hasNow: Boolean(s.debug.frames.now), drawn: Boolean(now && hex), state: s.state });
  const model = legendModel(s.metrics[s.state.layer], key, hex?.max ?? 1, s.privacyK(), s.city.metro_lines, released, span, panes);
  renderLegend(s.$('legend'), model);
}

/** The header's privacy budget meter, from the last `now` message (hidden before one). */
export function drawBudget(s) {
  renderBudget(s.$('budget'), budgetModel(s.debug.frames.now?.budget, s.city.utc_offset_h));
}

/** The headline figures at the shown window, from the last /api/v1/totals. */
export function drawHeadline(s) {
  const frame = s.shownFrame();
  const models = headlineModel(s.totals.windows, {
    statistics: s.config.statistics, shownWindowMs: frame?.window_start_ms ?? null, dataSinceMs: s.config.data_since_ms ?? null,
  });
  s.debug.headline = models.map(({ key, label, text, value, windowStartMs, span }) => ({ key, label, text, value, windowStartMs, span }));
  const offset = s.city.utc_offset_h;
  const pending = Object.fromEntries(['payments', 'transit'].map((layer) => [layer, pendingSpanText(frame, layer, s.manifest?.layer_windows_s, offset)]));
  renderHeadline(s.doc, models, s.totals.res, offset, pending);
}

/** The header's window, how fresh the provisional values drawn are, and the controls' resolution. */
function drawLabels(s, frame, now) {
  const { name, utc_offset_h: offset } = s.city;
  if (frame) {
    const t = localTime(frame.window_start_ms, offset);
    s.$('window-label').textContent = `window ${t.date} ${t.time} ${name} time · ${frame.window_s}s · res ${frame.res}`;
  }
  const fresh = s.$('now-label');
  fresh.hidden = !now;
  fresh.textContent = freshnessText(now, offset);
  s.$('res-label').textContent = `H3 resolution ${s.state.res} (follows zoom)`;
}
