// The headline figures above the map: each city-wide total the gateway releases at the shown window,
// with a sparkline of the last hour. `headlineModel` and `sparkline` are pure (tested); the render
// function only writes them out.

import { el } from './dom.js';
import { coveredSpan, formatNumber, HIDDEN, layerOf, localTime } from './format.js';

export const SPARK_W = 140;
export const SPARK_H = 30;
// The city-wide figures above the map, when the gateway releases their statistic (/api/v1/config).
// Rates are per minute whatever the window length.
export const HEADLINES = [
  { key: 'population.persons', label: 'People present', unit: 'people', perMinute: false },
  { key: 'active.persons', label: 'People active', unit: 'people', perMinute: false },
  { key: 'payments.amount_cny', label: 'Spend', unit: 'CNY per minute', perMinute: true },
  { key: 'transit.tap_in', label: 'Transit taps', unit: 'taps per minute', perMinute: true },
];

/** Whether `statistics` (config.statistics; null = not known, so all) releases the stat `key`. */
function releases(statistics, key) {
  if (!statistics) return true;
  const [layer, metric] = key.split('.');
  return Boolean(statistics[layer] && metric in statistics[layer]);
}

/** One headline's value per window: null where no cell released it (a gap, not a 0); rates per minute. */
function headlineValues(list, h, dataSinceMs) {
  return list.map((w) => {
    const v = w.totals?.[h.key];
    const known = typeof v === 'number' && (w.released_cells?.[h.key] ?? 1) > 0;
    // a rate divides by the part of the window its layer covers (spend may cover 15 minutes, the frame
    // one; right after a fresh start, only the minutes since the start)
    const covered = coveredSpan(w.spans?.[layerOf(h.key)], dataSinceMs);
    const seconds = covered ? (covered.to - covered.from) / 1000 : w.window_s;
    return known ? (h.perMinute ? (v * 60) / seconds : v) : null;
  });
}

/**
 * The headline figures from `/api/v1/totals` windows (oldest first): for each HEADLINES entry the
 * gateway releases, the value at the shown window (else the newest), its series for the sparkline, and
 * how many cells are hidden (their people are not in the sum).
 */
export function headlineModel(windows, { statistics = null, shownWindowMs = null, dataSinceMs = null } = {}) {
  const list = windows ?? [];
  const found = list.findIndex((w) => w.window_start_ms === shownWindowMs);
  const at = found >= 0 ? found : list.length - 1;
  const shown = at >= 0 ? list[at] : null;
  return HEADLINES.filter((h) => releases(statistics, h.key)).map((h) => {
    const values = headlineValues(list, h, dataSinceMs);
    const covered = coveredSpan(shown?.spans?.[layerOf(h.key)], dataSinceMs);
    const value = shown ? values[at] : null;
    const allHidden = shown !== null && value === null && (shown.suppressed_cells?.[h.key] ?? 0) > 0;
    return {
      key: h.key, label: h.label, unit: h.unit, values, index: at, value,
      text: value !== null ? formatNumber(value) : allHidden ? HIDDEN : '–',
      hiddenCells: shown?.suppressed_cells?.[h.key] ?? 0,
      windowStartMs: shown?.window_start_ms ?? null,
      span: covered ? [covered.from, covered.to] : null,
      partial: Boolean(covered?.partial),
    };
  });
}

/**
 * An SVG sparkline of `values` (null = no window: a gap) on a scale from 0 to their maximum:
 * {segments: ["x,y x,y ...", ...], mark: {x, y} of `markIndex` or null}.
 */
export function sparkline(values, width = SPARK_W, height = SPARK_H, markIndex = null) {
  const top = Math.max(0, ...values.filter((v) => typeof v === 'number'));
  const pad = 2;
  const x = (i) => (values.length > 1 ? pad + ((width - 2 * pad) * i) / (values.length - 1) : width / 2);
  const y = (v) => height - pad - (top > 0 ? ((height - 2 * pad) * v) / top : 0);
  const r = (n) => Math.round(n * 10) / 10;
  const segments = [];
  let run = [];
  values.forEach((v, i) => {
    if (typeof v === 'number') run.push(`${r(x(i))},${r(y(v))}`);
    else if (run.length) segments.push(run.join(' ')), (run = []);
  });
  if (run.length) segments.push(run.join(' '));
  const m = markIndex !== null && typeof values[markIndex] === 'number' ? { x: r(x(markIndex)), y: r(y(values[markIndex])) } : null;
  return { segments, mark: m };
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function svgNode(tag, attributes) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function sparkSvg(model) {
  const svg = svgNode('svg', { class: 'sparkline', width: SPARK_W, height: SPARK_H, viewBox: `0 0 ${SPARK_W} ${SPARK_H}` });
  const line = sparkline(model.values, SPARK_W, SPARK_H, model.index);
  for (const points of line.segments) svg.append(svgNode('polyline', { points }));
  if (line.mark) svg.append(svgNode('circle', { cx: line.mark.x, cy: line.mark.y, r: 2.5 }));
  return svg;
}

function figure(m, utcOffsetH, pending) {
  const fig = el('div', 'figure');
  fig.dataset.key = m.key;
  const hidden = m.hiddenCells ? ` · ${m.hiddenCells} hidden ${m.hiddenCells === 1 ? 'area' : 'areas'}` : '';
  const over = m.span ? ` · ${localTime(m.span[0], utcOffsetH).time}–${localTime(m.span[1], utcOffsetH).time}` : '';
  const waiting = m.value === null && pending[layerOf(m.key)];
  const partial = m.partial ? ' · since the start' : '';
  fig.append(el('div', 'figure-label', m.label + over), el('div', 'figure-value', m.text), el('div', 'figure-unit', waiting || m.unit + partial + hidden), sparkSvg(m));
  return fig;
}

/** The headline strip: one figure per model, with its sparkline of the last hour. */
export function renderHeadline(root, models, res, utcOffsetH = 0, pending = {}) {
  const target = root.getElementById('headline');
  if (!target) return;
  const note = el('div', 'figure-note', res === null ? 'waiting for released windows' : `last hour · sums of the released res-${res} cells; hidden cells are not counted`);
  target.replaceChildren(...models.map((m) => figure(m, utcOffsetH, pending)), note);
}
