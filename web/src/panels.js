// The headline figures and the side panels: busiest places, top flows, origin mix, spend by category,
// privacy. Each panel has a pure model (tested, plain words); the render functions only write it out.

export const BUSIEST_N = 5;
export const FLOWS_N = 5;
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
export const FLOW_KINDS = { transit: 'by metro or bus', movement: 'moved' };
export const DIMENSION_LABELS = { gender: 'Gender', age_band: 'Age', origin: 'Home region', category: 'Spent on', mode: 'Mode', line: 'Line' };
export const CATEGORY_LABELS = { F: 'women', M: 'men', 'hk-mo-tw': 'HK, Macau, Taiwan', 'bus-local': 'local buses' };

const fmt = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
export const HIDDEN = 'hidden';
export const formatNumber = (v) => (v === null ? HIDDEN : fmt.format(v));

/**
 * Why a value may be hidden, in words. Frames say only that a value is suppressed, never which rule
 * did it: saying "hidden only to protect a neighbour" would tell that the value itself is k or more.
 */
/** "11:03" and "2026-12-05" in the city's local time (the city file's utc_offset_h), for labels. */
export function localTime(ms, utcOffsetH = 0) {
  const iso = new Date(ms + utcOffsetH * 3_600_000).toISOString();
  return { date: iso.slice(0, 10), time: iso.slice(11, 16) };
}

/** The layer of a stat key ("payments.amount_cny|category=food" -> "payments"). */
export const layerOf = (key) => key.split('|')[0].split('.')[0];

/**
 * "08:00–08:15": the window a layer's values cover (frame.spans, [start_ms, end_ms]) in the city's
 * local time; '' when the frame does not say. Spend, transit and flows may cover a longer window than
 * people present, so every panel says which one it shows.
 */
export function spanLabel(frame, layer, utcOffsetH = 0) {
  const span = frame?.spans?.[layer];
  if (!span) return '';
  return `${localTime(span[0], utcOffsetH).time}–${localTime(span[1], utcOffsetH).time}`;
}

/** A title with the window of its layer: "Top flows (people) · 08:00–08:15". */
/**
 * For a layer over a longer window that no released window covers yet (the first quarter hour after a
 * start): "first 15-min window ends 08:15", so an empty figure says when it fills; '' otherwise.
 * The end is the next multiple of the layer's window after the shown frame's end (windows are aligned).
 */
export function pendingSpanText(frame, layer, layerWindowsS, utcOffsetH = 0) {
  const spanS = layerWindowsS?.[layer];
  if (!frame || frame.spans?.[layer] || !spanS || spanS === frame.window_s) return '';
  const spanMs = spanS * 1000;
  const endMs = frame.window_start_ms + frame.window_s * 1000;
  const closesMs = Math.ceil(endMs / spanMs) * spanMs;
  const length = spanS % 60 ? `${spanS} s` : `${spanS / 60}-min`;
  return `first ${length} window ends ${localTime(closesMs, utcOffsetH).time}`;
}

export const withSpan = (title, frame, layer, utcOffsetH = 0) => {
  const label = spanLabel(frame, layer, utcOffsetH);
  return label ? `${title} · ${label}` : title;
};

export function suppressionReason(key, k, dominanceShare = 0.5) {
  const reasons = [`fewer than ${k} people`, 'hidden so that a neighbouring hidden value cannot be worked out'];
  if (key?.startsWith('payments.amount')) reasons.push(`one payer makes up more than ${Math.round(dominanceShare * 100)}% of it`);
  return `${reasons.slice(0, -1).join(', ')} or ${reasons.at(-1)}`;
}

/** "women", "25-34", "Line 1 (Luobao)": a breakdown category as an operator reads it. */
export function categoryLabel(dimension, category, lineNames = {}) {
  if (dimension === 'line') return lineNames[category] ?? CATEGORY_LABELS[category] ?? category;
  return CATEGORY_LABELS[category] ?? category;
}

/** The statistic a key is a part of, in words: '' for a total, "gender: women" for a part. */
export function partLabel(key) {
  const [, part] = key.split('|');
  if (!part) return '';
  const [dimension, category] = part.split('=');
  return `${(DIMENSION_LABELS[dimension] ?? dimension).toLowerCase()}: ${categoryLabel(dimension, category)}`;
}

// ---- headline figures -------------------------------------------------------------------------

/**
 * The headline figures from `/api/v1/totals` windows (oldest first): for each HEADLINES entry the
 * gateway releases, the value at the shown window (else the newest), its series for the sparkline, and
 * how many cells are hidden (their people are not in the sum).
 */
export function headlineModel(windows, { statistics = null, shownWindowMs = null } = {}) {
  const released = (key) => {
    if (!statistics) return true;
    const [layer, metric] = key.split('.');
    return Boolean(statistics[layer] && metric in statistics[layer]);
  };
  const list = windows ?? [];
  const found = list.findIndex((w) => w.window_start_ms === shownWindowMs);
  const at = found >= 0 ? found : list.length - 1;
  return HEADLINES.filter((h) => released(h.key)).map((h) => {
    // a window where no cell released the statistic knows nothing of it: a gap, not a 0
    const values = list.map((w) => {
      const v = w.totals?.[h.key];
      const known = typeof v === 'number' && (w.released_cells?.[h.key] ?? 1) > 0;
      // a rate divides by the window the layer covers (spend may cover 15 minutes, the frame one)
      const span = w.spans?.[layerOf(h.key)];
      const seconds = span ? (span[1] - span[0]) / 1000 : w.window_s;
      return known ? (h.perMinute ? (v * 60) / seconds : v) : null;
    });
    const allHidden = at >= 0 && values[at] === null && (list[at].suppressed_cells?.[h.key] ?? 0) > 0;
    return {
      key: h.key, label: h.label, unit: h.unit, values, index: at,
      value: at >= 0 ? values[at] : null,
      text: at >= 0 && values[at] !== null ? fmt.format(values[at]) : allHidden ? HIDDEN : '–',
      hiddenCells: at >= 0 ? list[at].suppressed_cells?.[h.key] ?? 0 : 0,
      windowStartMs: at >= 0 ? list[at].window_start_ms : null,
      span: at >= 0 ? list[at].spans?.[layerOf(h.key)] ?? null : null,
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

// ---- busiest places and flows -----------------------------------------------------------------

/** The `n` cells with the largest released value of `key` (suppressed and absent cells excluded). */
export function busiestCells(frame, key, n = BUSIEST_N) {
  return Object.entries(frame?.cells ?? {})
    .filter(([, s]) => typeof s[key] === 'number')
    .map(([hex, s]) => ({ hex, value: s[key] }))
    .sort((a, b) => b.value - a.value || a.hex.localeCompare(b.hex))
    .slice(0, n);
}

/** Busiest cells as [place label, number] rows; `placeOf(hex)` gives {label}. */
export function busiestRows(frame, key, placeOf, n = BUSIEST_N) {
  return busiestCells(frame, key, n).map((c) => [placeOf(c.hex).label, formatNumber(c.value)]);
}

export function topFlows(frame, n = FLOWS_N) {
  return (frame?.flows ?? [])
    .filter((f) => f.persons !== null)
    .sort((a, b) => b.persons - a.persons)
    .slice(0, n);
}

/**
 * Released flows added up by district of origin and destination (and kind), largest first:
 * [{from, to, kind, persons, arcs}]. Suppressed pairs are not in the sums.
 */
export function districtFlows(frame, districtOf, n = FLOWS_N) {
  const sums = new Map();
  for (const f of frame?.flows ?? []) {
    if (f.persons === null) continue;
    const [from, to] = [districtOf(f.origin), districtOf(f.dest)];
    const id = `${from}\u0000${to}\u0000${f.kind}`;
    const s = sums.get(id) ?? { from, to, kind: f.kind, persons: 0, arcs: 0 };
    s.persons += f.persons;
    s.arcs += 1;
    sums.set(id, s);
  }
  return [...sums.values()]
    .sort((a, b) => b.persons - a.persons || `${a.from}${a.to}`.localeCompare(`${b.from}${b.to}`))
    .slice(0, n);
}

/** "Futian → Nanshan", or "within Futian". */
export const flowLabel = (f) => (f.from === f.to ? `within ${f.from}` : `${f.from} → ${f.to}`);

/** [label, kind in words, number] rows of the top flows panel. */
export function flowRows(frame, districtOf, n = FLOWS_N) {
  return districtFlows(frame, districtOf, n).map((f) => [flowLabel(f), FLOW_KINDS[f.kind] ?? f.kind, formatNumber(f.persons)]);
}

// ---- breakdowns -------------------------------------------------------------------------------

/**
 * City-wide parts of a breakdown: category -> {value, releasedCells, suppressedCells}. Only released
 * values are summed; cells where the part was suppressed are counted, so the panel can say what it
 * cannot show.
 */
export function breakdownTotals(frame, prefix, categories) {
  const out = Object.fromEntries(categories.map((c) => [c, { value: 0, releasedCells: 0, suppressedCells: 0 }]));
  for (const stats of Object.values(frame?.cells ?? {})) {
    for (const c of categories) {
      const v = stats[`${prefix}=${c}`];
      if (v === null) out[c].suppressedCells += 1;
      else if (typeof v === 'number') (out[c].value += v), (out[c].releasedCells += 1);
    }
  }
  return out;
}

/** Bar rows: [{label, share (0..1 of the largest), text}]; a part released nowhere reads "hidden", not 0. */
export function barRows(totals, dimension) {
  const max = Math.max(1, ...Object.values(totals).map((t) => t.value));
  return Object.entries(totals).map(([cat, t]) => ({
    label: categoryLabel(dimension, cat),
    share: t.value / max,
    text: !t.releasedCells && t.suppressedCells ? HIDDEN : formatNumber(t.value),
  }));
}

/** One line under a breakdown's bars: how many areas hide a part (their people are not in the bars). */
export function hiddenNote(totals, areas) {
  const most = Math.max(0, ...Object.values(totals).map((t) => t.suppressedCells));
  if (!most) return '';
  return `Counted where released only: a part is hidden in up to ${most} of ${areas} areas.`;
}

// ---- privacy ----------------------------------------------------------------------------------

const detailValue = (v) => (v === null ? '–' : Array.isArray(v) ? v.join(', ') : String(v));

/** The manifest flattened to [name, value] rows (nested objects one level deep, lists joined). */
export function manifestRows(manifest, framePrivacy) {
  const rows = [];
  const add = (prefix, obj) => {
    for (const [k, v] of Object.entries(obj ?? {})) {
      const name = `${prefix}${k.replaceAll('_', ' ')}`;
      if (k === 'rules') continue; // listed on their own
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        if (!prefix) add(`${name} · `, v);
      } else rows.push([name, detailValue(v)]);
    }
  };
  add('', manifest);
  if (framePrivacy) {
    rows.push(['this window: mechanism', framePrivacy.mechanism]);
    rows.push(['this window: epsilon spent', String(framePrivacy.epsilon)]);
  }
  return rows;
}

/**
 * The privacy panel in plain words: {summary, lines, rules, details}. k comes from the manifest (the
 * shown frame's own k when the manifest could not be read).
 */
export function privacyModel(manifest, framePrivacy) {
  const k = manifest?.k ?? manifest?.min_persons ?? framePrivacy?.min_persons ?? null;
  if (k === null) return { summary: 'The privacy rules could not be loaded.', lines: [], rules: [], details: [] };
  const window = manifest?.window_s ? (manifest.window_s === 60 ? 'minute' : `${manifest.window_s} seconds`) : 'window';
  const dp = manifest?.dp_enabled ?? framePrivacy?.dp_enabled ?? false;
  const lines = [
    `Violet cells have fewer, or are hidden so that a neighbouring hidden value cannot be worked out.`,
    `Numbers count people per area and ${window}; nobody is identified.`,
  ];
  const longer = windowsLine(manifest?.layer_windows_s, manifest?.window_s);
  if (longer) lines.push(longer);
  if (manifest?.dominance_share) {
    lines.push(`Spend is also hidden where one payer makes up more than ${Math.round(manifest.dominance_share * 100)}% of it.`);
  }
  lines.push(dp
    ? `Random noise is added to every number (differential privacy, ${manifest?.mechanism ?? framePrivacy?.mechanism}).`
    : 'No random noise is added (differential privacy is off).');
  if (manifest?.warning) lines.push(manifest.warning);
  return {
    summary: `Every number covers at least ${k} people.`,
    lines,
    rules: manifest?.rules ?? [],
    details: manifestRows(manifest, framePrivacy),
  };
}

const LAYER_WORDS = { payments: 'spend', transit: 'transit taps', flows: 'flows' };

/** "Spend (15 min), transit taps (15 min) and flows (15 min) cover longer windows ..." or ''. */
export function windowsLine(layerWindows, baseS) {
  const named = Object.entries(layerWindows ?? {}).filter(([layer, s]) => layer in LAYER_WORDS && s !== baseS);
  if (!named.length) return '';
  const words = named.map(([layer, s]) => `${LAYER_WORDS[layer]} (${s % 60 ? `${s} s` : `${s / 60} min`})`);
  const list = words.length > 1 ? `${words.slice(0, -1).join(', ')} and ${words.at(-1)}` : words[0];
  return `People present are counted every window; ${list} cover longer windows, so that more areas reach enough people. Each panel says the window it shows.`;
}

// ---- DOM --------------------------------------------------------------------------------------

const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

function table(rows) {
  const t = document.createElement('table');
  for (const cells of rows) {
    const tr = t.insertRow();
    for (const c of cells) tr.insertCell().textContent = c;
  }
  return t;
}

function fill(root, id, title, ...nodes) {
  const target = root.getElementById(id);
  if (!target) return;
  target.replaceChildren(el('h3', null, title), ...nodes);
}

function bars(rows) {
  const wrap = el('div');
  for (const r of rows) {
    const row = el('div', 'bar-row');
    const bar = el('span', 'bar');
    bar.style.width = `${100 * r.share}%`;
    row.append(el('span', 'bar-label', r.label), bar, el('span', 'bar-value', r.text));
    wrap.append(row);
  }
  return wrap;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function sparkSvg(model) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'sparkline');
  svg.setAttribute('width', SPARK_W);
  svg.setAttribute('height', SPARK_H);
  svg.setAttribute('viewBox', `0 0 ${SPARK_W} ${SPARK_H}`);
  const line = sparkline(model.values, SPARK_W, SPARK_H, model.index);
  for (const points of line.segments) {
    const p = document.createElementNS(SVG_NS, 'polyline');
    p.setAttribute('points', points);
    svg.append(p);
  }
  if (line.mark) {
    const c = document.createElementNS(SVG_NS, 'circle');
    c.setAttribute('cx', line.mark.x);
    c.setAttribute('cy', line.mark.y);
    c.setAttribute('r', 2.5);
    svg.append(c);
  }
  return svg;
}

/** The headline strip: one figure per model, with its sparkline of the last hour. */
export function renderHeadline(root, models, res, utcOffsetH = 0, pending = {}) {
  const target = root.getElementById('headline');
  if (!target) return;
  const figures = models.map((m) => {
    const fig = el('div', 'figure');
    fig.dataset.key = m.key;
    const hidden = m.hiddenCells ? ` · ${m.hiddenCells} hidden ${m.hiddenCells === 1 ? 'area' : 'areas'}` : '';
    const over = m.span ? ` · ${localTime(m.span[0], utcOffsetH).time}–${localTime(m.span[1], utcOffsetH).time}` : '';
    const waiting = m.value === null && pending[layerOf(m.key)];
    fig.append(el('div', 'figure-label', m.label + over), el('div', 'figure-value', m.text), el('div', 'figure-unit', waiting || m.unit + hidden), sparkSvg(m));
    return fig;
  });
  const note = el('div', 'figure-note', res === null ? 'waiting for released windows' : `last hour · sums of the released res-${res} cells; hidden cells are not counted`);
  target.replaceChildren(...figures, note);
}

/**
 * Write every side panel. `places` names cells ({place(hex), district(hex)}); origin mix and spend by
 * category need their own breakdowns, so main.js fetches them city-wide (coarsest resolution) once per
 * window and passes them as `breakdownFrames`.
 */
export function renderPanels(root, frame, { key, metric, config, manifest, places, breakdownFrames = {}, utcOffsetH = 0 }) {
  const title = withSpan(`Busiest places · ${metric?.label ?? key}${partLabel(key) ? ` (${partLabel(key)})` : ''}`, frame, layerOf(key), utcOffsetH);
  const busiest = busiestRows(frame, key, places.place);
  fill(root, 'panel-busiest', title, busiest.length ? table(busiest) : el('p', 'muted', 'No value released in view in this window.'));
  const flows = flowRows(frame, places.district);
  const flowsWaiting = pendingSpanText(frame, 'flows', manifest?.layer_windows_s, utcOffsetH);
  const noFlows = flowsWaiting ? `No flows yet: the ${flowsWaiting}.` : 'No flow large enough to show in this window.';
  fill(root, 'panel-flows', withSpan('Top flows (people)', frame, 'flows', utcOffsetH), flows.length ? table(flows) : el('p', 'muted', noFlows));
  const breakdownPanel = (id, title, bd, prefix, dimension) => {
    const totals = breakdownTotals(bd, prefix, config?.breakdowns?.[dimension] ?? []);
    const areas = Object.values(bd?.cells ?? {}).filter((s) => prefix.split('|')[0] in s).length;
    fill(root, id, withSpan(title, bd, layerOf(prefix), utcOffsetH), bars(barRows(totals, dimension)), el('p', 'muted', hiddenNote(totals, areas)));
  };
  breakdownPanel('panel-origins', 'Where people come from', breakdownFrames.origin, 'population.persons|origin', 'origin');
  breakdownPanel('panel-spend', 'Spend by category (CNY)', breakdownFrames.category, 'payments.amount_cny|category', 'category');
  const privacy = privacyModel(manifest, frame?.privacy);
  const details = el('details');
  const rules = el('ul');
  rules.append(...privacy.rules.map((r) => el('li', null, r)));
  details.append(el('summary', null, 'Manifest details'), rules, table(privacy.details));
  fill(root, 'panel-privacy', 'Privacy', el('p', 'privacy-summary', privacy.summary), ...privacy.lines.map((l) => el('p', 'privacy-line', l)), details);
}
