// Frames -> deck.gl layer props. Pure: no DOM, no deck.gl import, so vitest can check every rule.
// A null stat is suppressed (drawn distinct); a cell without the stat had no data (not drawn).
// Provisional values (now.js) replace the final ones of the cells they hold and are hatched.

import { mergeNow } from './now.js';

export const HEX_LAYER_ID = 'cells';
export const ARC_LAYER_ID = 'flows';
export const HATCH_LAYER_ID = 'provisional-hatch';
export const MAX_ARCS = 40;

// What each hexagon layer shows: the stat key of its total. The layers themselves come from the
// gateway's /api/v1/config (`layerMetrics`); these are the labels and metrics of the ones known here.
export const METRICS = {
  population: { key: 'population.persons', label: 'People present', unit: 'persons' },
  payments: { key: 'payments.amount_cny', label: 'Spend', unit: 'CNY' },
  transit: { key: 'transit.tap_in', label: 'Transit tap-ins', unit: 'taps' },
};
export const METRIC_LABELS = {
  'population.persons': { label: 'People present', unit: 'persons' },
  'active.persons': { label: 'People active', unit: 'persons' },
  'payments.amount_cny': { label: 'Spend', unit: 'CNY' },
  'payments.count': { label: 'Payments', unit: 'payments' },
  'transit.tap_in': { label: 'Transit tap-ins', unit: 'taps' },
  'transit.tap_out': { label: 'Transit tap-outs', unit: 'taps' },
};

/**
 * Layer -> {key, label, unit} for every layer the gateway releases (`config.statistics`): the metric
 * of METRICS when known, else the layer's first metric with a label made from its key.
 */
export function layerMetrics(statistics) {
  if (!statistics) return METRICS;
  const out = {};
  for (const [layer, metrics] of Object.entries(statistics)) {
    const known = METRICS[layer];
    const metric = known && known.key.split('.')[1] in metrics ? known.key.split('.')[1] : Object.keys(metrics)[0];
    if (!metric) continue;
    const key = `${layer}.${metric}`;
    out[layer] = { key, ...(METRIC_LABELS[key] ?? { label: `${layer} ${metric}`.replaceAll('_', ' '), unit: metric.replaceAll('_', ' ') }) };
  }
  return out;
}

// Yellow -> orange -> deep red; far from the base map's blues so hexagons stand out.
export const COLOR_RAMP = [
  [255, 237, 160],
  [254, 178, 76],
  [253, 141, 60],
  [240, 59, 32],
  [189, 0, 38],
];
export const SUPPRESSED_COLOR = [150, 110, 255, 200];
export const SUPPRESSED_LINE = [235, 225, 255, 255];
export const HIGHLIGHT_COLOR = [255, 255, 255, 70];
export const HATCH_COLOR = [11, 22, 34, 170]; // the page's background, over the ramp's bright fills
export const HATCH_WIDTH_PX = 1.5;
export const ARC_COLORS = { transit: [0, 200, 255], movement: [120, 255, 160] };

// Coarser cells when zoomed out: [min zoom, res] pairs, checked from the finest.
export const ZOOM_TO_RES = [
  [12.5, 8],
  [10.5, 7],
  [0, 6],
];

/** The released resolution to show at `zoom`, limited to those the gateway offers. */
export function resForZoom(zoom, resolutions) {
  const offered = [...resolutions].sort((a, b) => b - a);
  for (const [minZoom, res] of ZOOM_TO_RES) {
    if (zoom >= minZoom && offered.includes(res)) return res;
  }
  return offered[offered.length - 1];
}

/**
 * The breakdown dimensions a user can pick, in the order the gateway lists them: those of any metric
 * (`config.statistics`) that have a fixed category set (`config.breakdowns`) to choose a part from.
 */
export function breakdownChoices(statistics, breakdowns) {
  const dims = Object.values(statistics ?? {}).flatMap((metrics) => Object.values(metrics).flat());
  return [...new Set(dims)].filter((d) => (breakdowns?.[d] ?? []).length > 0);
}

/** The stat key for a layer, with a breakdown part when one is chosen and the metric has it. */
export function statKey(layer, breakdown, category, statistics) {
  const base = (layerMetrics(statistics)[layer] ?? METRICS[layer]).key;
  if (!breakdown || !category) return base;
  const metric = base.split('.')[1];
  const dims = statistics?.[layer]?.[metric] ?? [];
  return dims.includes(breakdown) ? `${base}|${breakdown}=${category}` : base;
}

/** Rows for the hexagon layer: {hex, value, suppressed}; cells without the key are left out. */
export function hexRows(frame, key) {
  if (!frame) return [];
  const rows = [];
  for (const [hex, stats] of Object.entries(frame.cells ?? {})) {
    if (!(key in stats)) continue;
    const value = stats[key];
    rows.push({ hex, value, suppressed: value === null });
  }
  return rows;
}

/**
 * The top of the colour scale: the largest released value rounded up to two significant digits
 * (27 -> 27, 1243 -> 1300, 0.34 -> 0.34), so the legend's top is the current maximum and the darkest
 * colour is used.
 */
export function scaleMax(values) {
  const max = Math.max(0, ...values.filter((v) => typeof v === 'number'));
  if (max <= 0) return 1;
  const step = 10 ** (Math.floor(Math.log10(max)) - 1);
  // the small tolerance keeps float noise (0.34 / 0.01 = 34.000000000000004) from rounding up a step
  return Number((Math.ceil(max / step - 1e-9) * step).toPrecision(2));
}

export function colorFor(value, max) {
  if (value === null) return SUPPRESSED_COLOR;
  const t = Math.max(0, Math.min(1, value / max));
  const scaled = t * (COLOR_RAMP.length - 1);
  const i = Math.min(Math.floor(scaled), COLOR_RAMP.length - 2);
  const f = scaled - i;
  const [a, b] = [COLOR_RAMP[i], COLOR_RAMP[i + 1]];
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)).concat([215]);
}

/** Legend stops for a scale from 0 to max: five labelled colours. */
export function legendStops(max) {
  return COLOR_RAMP.map((_, i) => {
    const value = (max * i) / (COLOR_RAMP.length - 1);
    return { value, color: colorFor(value, max) };
  });
}

/**
 * The released flows to draw: the MAX_ARCS largest, since a dense city releases hundreds and an
 * operator reads the main streams, not a tangle (the flows panel lists them by district).
 */
export function arcRows(frame, limit = MAX_ARCS) {
  return (frame?.flows ?? [])
    .filter((f) => f.persons !== null && f.origin !== f.dest)
    .sort((a, b) => b.persons - a.persons)
    .slice(0, limit);
}

/**
 * Layer descriptors for the current state: [{type, props}]. main.js turns them into deck.gl layers;
 * ids are stable so deck.gl diffs instead of rebuilding. `draw` (optional): `now`, the provisional
 * values to draw over `frame` (now.usableNow); `stable`, rows -> {rows, version} (hatch.makeStableRows)
 * so that values change in place; `hatch`, rows -> the stripes of the provisional ones (hatch.makeHatch).
 * With hexagons on, the stripes layer is always there (empty without provisional values), so the
 * layers drawn do not change as provisional values come and go.
 */
export function buildLayers(frame, state, centerOf, { now = null, stable = null, hatch = null } = {}) {
  const key = statKey(state.layer, state.breakdown, state.category, state.statistics);
  const merged = state.showHexes ? mergeNow(hexRows(frame, key), now) : [];
  const { rows, version } = stable ? stable(merged) : { rows: merged, version: 0 };
  const max = scaleMax(rows.map((r) => r.value));
  const out = [];
  if (state.showHexes) {
    out.push({
      type: 'H3HexagonLayer',
      props: {
        id: HEX_LAYER_ID,
        data: rows,
        pickable: true,
        autoHighlight: true, // the cell under the pointer, whose tooltip is shown
        highlightColor: HIGHLIGHT_COLOR,
        filled: true,
        stroked: true,
        extruded: false,
        highPrecision: true,
        getHexagon: (d) => d.hex,
        getFillColor: (d) => colorFor(d.value, max),
        getLineColor: (d) => (d.suppressed ? SUPPRESSED_LINE : [255, 255, 255, 60]),
        getLineWidth: (d) => (d.suppressed ? 2 : 1),
        lineWidthUnits: 'pixels',
        // `version` counts values changed in place in the same array (a `now` message every 2 s)
        updateTriggers: { getFillColor: [key, max, version], getLineColor: version, getLineWidth: version },
      },
      key,
      max,
    });
    out.push({
      type: 'PathLayer',
      props: {
        id: HATCH_LAYER_ID,
        data: hatch ? hatch(rows) : [],
        pickable: false, // the cell under the stripes answers the pointer
        getPath: (d) => d.path,
        getColor: HATCH_COLOR,
        getWidth: HATCH_WIDTH_PX,
        widthUnits: 'pixels',
      },
    });
  }
  if (state.showFlows) {
    const arcs = arcRows(frame);
    const top = Math.max(1, ...arcs.map((a) => a.persons));
    out.push({
      type: 'ArcLayer',
      props: {
        id: ARC_LAYER_ID,
        data: arcs,
        pickable: true,
        getSourcePosition: (d) => centerOf(d.origin),
        getTargetPosition: (d) => centerOf(d.dest),
        getSourceColor: (d) => [...(ARC_COLORS[d.kind] ?? ARC_COLORS.movement), 200],
        getTargetColor: (d) => [...(ARC_COLORS[d.kind] ?? ARC_COLORS.movement), 90],
        getWidth: (d) => 1 + (5 * d.persons) / top,
        widthUnits: 'pixels',
      },
    });
  }
  return out;
}
