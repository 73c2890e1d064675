// Drawing the page from the Screen's state (screen.js): the deck.gl layers over the map, the legend,
// the side panels, the headline figures and the window labels, each from its pure module.

import { layerOf, localTime, pendingSpanText, spanLabel } from './format.js';
import { headlineModel, renderHeadline } from './headline.js';
import { legendModel, renderLegend } from './legend.js';
import { ARC_LAYER_ID, buildLayers, HEX_LAYER_ID } from './layers.js';
import { renderPanels } from './panels.js';

/** Draw everything from the shown frame (live, or the paused window) and the Screen `s`'s state. */
export function render(s) {
  const frame = s.shownFrame();
  s.debug.frames.shown = frame;
  const descriptors = buildLayers(frame, s.state, s.centerOf);
  const hex = descriptors.find((d) => d.props.id === HEX_LAYER_ID);
  drawLayers(s, descriptors);
  drawLegend(s, frame, hex);
  const { city, config, manifest, places } = s;
  renderPanels(s.doc, frame, {
    key: s.statKey(), metric: s.metrics[s.state.layer], config, manifest, places,
    breakdownFrames: s.panelFrames, utcOffsetH: city.utc_offset_h,
  });
  drawHeadline(s);
  s.hover.show();
  drawLabels(s, frame);
}

/** District borders and metro lines over the hexagons, arcs over them, names on top. */
function drawLayers(s, descriptors) {
  const hex = descriptors.find((d) => d.props.id === HEX_LAYER_ID);
  const arcs = descriptors.find((d) => d.props.id === ARC_LAYER_ID);
  const { lines, labels } = s.context;
  s.view.draw([hex && s.hover.withHover(hex), ...lines, arcs && s.hover.withHover(arcs), ...labels].filter(Boolean));
  s.debug.layers = descriptors.map((d) => ({
    id: d.props.id, type: d.type, key: d.key ?? null, max: d.max ?? null, count: d.props.data.length,
    suppressed: d.props.data.filter((r) => r.suppressed).length, data: d.props.data.map((r) => ({ ...r })),
  }));
}

/** The colour scale of the hexagon layer `hex` (its descriptor), with k and the window it covers. */
function drawLegend(s, frame, hex) {
  const key = s.statKey();
  const released = Boolean(hex?.props.data.some((r) => !r.suppressed));
  const span = spanLabel(frame, layerOf(key), s.city.utc_offset_h, s.config.data_since_ms ?? null);
  const model = legendModel(s.metrics[s.state.layer], key, hex?.max ?? 1, s.privacyK(), s.city.metro_lines, released, span);
  renderLegend(s.$('legend'), model);
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

/** The header's window and the controls' resolution. */
function drawLabels(s, frame) {
  const { name, utc_offset_h: offset } = s.city;
  if (frame) {
    const t = localTime(frame.window_start_ms, offset);
    s.$('window-label').textContent = `window ${t.date} ${t.time} ${name} time · ${frame.window_s}s · res ${frame.res}`;
  }
  s.$('res-label').textContent = `H3 resolution ${s.state.res} (follows zoom)`;
}
