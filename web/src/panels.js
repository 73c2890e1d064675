// The side panels: busiest places, top flows, origin mix, spend by category, privacy. Each panel has a
// pure model (tested, plain words); the render functions only write it out. The headline figures are in
// headline.js, the shared words and numbers in format.js.

import { el, table } from './dom.js';
import { categoryLabel, formatNumber, HIDDEN, layerOf, partLabel, pendingSpanText, withSpan } from './format.js';

export const BUSIEST_N = 5;
export const FLOWS_N = 5;
export const FLOW_KINDS = { transit: 'by metro or bus', movement: 'moved' };

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

/** The now layer's privacy in one line (manifest.now_layer). */
export function nowLine(now) {
  const eps = Number(now.epsilon_per_person_day).toFixed(1);
  return `Provisional people present (hatched, every ${now.tick_s} s) carry random noise: differential privacy, `
    + `at most ε ${eps} per person per day for everything they show.`;
}

/** Which final numbers carry random noise, in words. */
function noiseLine(dp, manifest, framePrivacy) {
  if (dp) return `Random noise is added to every number (differential privacy, ${manifest?.mechanism ?? framePrivacy?.mechanism}).`;
  if ((manifest?.noised_layers ?? []).includes('population')) {
    return `Random noise (${manifest?.dp?.mechanism ?? 'differential privacy'}) is added to people present and active persons. `
      + 'A count keeps the same noise while it holds, so a hidden number cannot be worked out by comparing '
      + 'or averaging minutes. Spend, transit and flows are exact.';
  }
  return 'No random noise is added to final numbers (differential privacy is off for them).';
}

/** The plain-word lines of the privacy panel, after its summary. */
function privacyLines(manifest, framePrivacy) {
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
  lines.push(noiseLine(dp, manifest, framePrivacy));
  const now = manifest?.now_layer;
  if (now) lines.push(nowLine(now));
  if (manifest?.warning) lines.push(manifest.warning);
  return lines;
}

/**
 * The privacy panel in plain words: {summary, lines, rules, details}. k comes from the manifest (the
 * shown frame's own k when the manifest could not be read).
 */
export function privacyModel(manifest, framePrivacy) {
  const k = manifest?.k ?? manifest?.min_persons ?? framePrivacy?.min_persons ?? null;
  if (k === null) return { summary: 'The privacy rules could not be loaded.', lines: [], rules: [], details: [] };
  return {
    summary: `Every number covers at least ${k} people.`,
    lines: privacyLines(manifest, framePrivacy),
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

function renderBusiest(root, frame, { key, metric, places, utcOffsetH, since }) {
  const part = partLabel(key);
  const title = withSpan(`Busiest places · ${metric?.label ?? key}${part ? ` (${part})` : ''}`, frame, layerOf(key), utcOffsetH, since);
  const busiest = busiestRows(frame, key, places.place);
  fill(root, 'panel-busiest', title, busiest.length ? table(busiest) : el('p', 'muted', 'No value released in view in this window.'));
}

function renderFlows(root, frame, { manifest, places, utcOffsetH, since }) {
  const flows = flowRows(frame, places.district);
  const flowsWaiting = pendingSpanText(frame, 'flows', manifest?.layer_windows_s, utcOffsetH);
  const noFlows = flowsWaiting ? `No flows yet: the ${flowsWaiting}.` : 'No flow large enough to show in this window.';
  fill(root, 'panel-flows', withSpan('Top flows (people)', frame, 'flows', utcOffsetH, since), flows.length ? table(flows) : el('p', 'muted', noFlows));
}

/** A breakdown's city-wide bars from its own frame `bd`, stat `prefix` ("population.persons|origin"). */
function renderBreakdown(root, id, title, { bd, prefix, dimension, config, utcOffsetH, since }) {
  const totals = breakdownTotals(bd, prefix, config?.breakdowns?.[dimension] ?? []);
  const areas = Object.values(bd?.cells ?? {}).filter((s) => prefix.split('|')[0] in s).length;
  fill(root, id, withSpan(title, bd, layerOf(prefix), utcOffsetH, since), bars(barRows(totals, dimension)), el('p', 'muted', hiddenNote(totals, areas)));
}

function renderPrivacy(root, frame, manifest) {
  const privacy = privacyModel(manifest, frame?.privacy);
  const details = el('details');
  const rules = el('ul');
  rules.append(...privacy.rules.map((r) => el('li', null, r)));
  details.append(el('summary', null, 'Manifest details'), rules, table(privacy.details));
  fill(root, 'panel-privacy', 'Privacy', el('p', 'privacy-summary', privacy.summary), ...privacy.lines.map((l) => el('p', 'privacy-line', l)), details);
}

/**
 * Write every side panel. `places` names cells ({place(hex), district(hex)}); origin mix and spend by
 * category need their own breakdowns, so the page fetches them city-wide (coarsest resolution) once per
 * window and passes them as `breakdownFrames`.
 */
export function renderPanels(root, frame, { key, metric, config, manifest, places, breakdownFrames = {}, utcOffsetH = 0 }) {
  const since = config?.data_since_ms ?? null; // a fresh run's start: earlier windows are partial
  renderBusiest(root, frame, { key, metric, places, utcOffsetH, since });
  renderFlows(root, frame, { manifest, places, utcOffsetH, since });
  renderBreakdown(root, 'panel-origins', 'Where people come from',
    { bd: breakdownFrames.origin, prefix: 'population.persons|origin', dimension: 'origin', config, utcOffsetH, since });
  renderBreakdown(root, 'panel-spend', 'Spend by category (CNY)',
    { bd: breakdownFrames.category, prefix: 'payments.amount_cny|category', dimension: 'category', config, utcOffsetH, since });
  renderPrivacy(root, frame, manifest);
}
