// Side panels: busiest cells, top flows, origin mix, spend by category, privacy manifest.
// The summaries are pure (tested); `renderPanels` only writes them into the DOM.

const fmt = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
export const formatNumber = (v) => (v === null ? 'suppressed' : fmt.format(v));

/** The `n` cells with the largest released value of `key` (suppressed and absent cells excluded). */
export function busiestCells(frame, key, n = 5) {
  return Object.entries(frame?.cells ?? {})
    .filter(([, s]) => typeof s[key] === 'number')
    .map(([hex, s]) => ({ hex, value: s[key] }))
    .sort((a, b) => b.value - a.value || a.hex.localeCompare(b.hex))
    .slice(0, n);
}

export function topFlows(frame, n = 5) {
  return (frame?.flows ?? [])
    .filter((f) => f.persons !== null)
    .sort((a, b) => b.persons - a.persons)
    .slice(0, n);
}

/**
 * City-wide parts of a breakdown: category -> {value, suppressedCells}. Only released values are
 * summed; cells where the part was suppressed are counted, so the panel can say what it cannot show.
 */
export function breakdownTotals(frame, prefix, categories) {
  const out = Object.fromEntries(categories.map((c) => [c, { value: 0, suppressedCells: 0 }]));
  for (const stats of Object.values(frame?.cells ?? {})) {
    for (const c of categories) {
      const v = stats[`${prefix}=${c}`];
      if (v === null) out[c].suppressedCells += 1;
      else if (typeof v === 'number') out[c].value += v;
    }
  }
  return out;
}

export function manifestRows(manifest, framePrivacy) {
  const rows = Object.entries(manifest ?? {})
    .filter(([, v]) => v === null || ['string', 'number', 'boolean'].includes(typeof v))
    .map(([k, v]) => [k.replaceAll('_', ' '), String(v)]);
  if (framePrivacy) {
    rows.push(['this window: mechanism', framePrivacy.mechanism]);
    rows.push(['this window: epsilon spent', String(framePrivacy.epsilon)]);
  }
  return rows;
}

function table(rows) {
  const t = document.createElement('table');
  for (const cells of rows) {
    const tr = t.insertRow();
    for (const c of cells) tr.insertCell().textContent = c;
  }
  return t;
}

function fill(id, title, node) {
  const el = document.getElementById(id);
  if (!el) return;
  const h = document.createElement('h3');
  h.textContent = title;
  el.replaceChildren(h, node);
}

function bars(totals) {
  const max = Math.max(1, ...Object.values(totals).map((t) => t.value));
  const wrap = document.createElement('div');
  for (const [cat, t] of Object.entries(totals)) {
    const row = document.createElement('div');
    row.className = 'bar-row';
    const note = t.suppressedCells ? ` (+${t.suppressedCells} suppressed)` : '';
    row.innerHTML = `<span class="bar-label"></span><span class="bar" style="width:${(100 * t.value) / max}%"></span><span class="bar-value"></span>`;
    row.children[0].textContent = cat;
    row.children[2].textContent = formatNumber(t.value) + note;
    wrap.append(row);
  }
  return wrap;
}

// Origin mix and spend by category need their own breakdowns, so main.js fetches them city-wide
// (coarsest resolution) once per window and passes them as `breakdownFrames`.
export function renderPanels(frame, { key, config, manifest, breakdownFrames = {} }) {
  const busiest = busiestCells(frame, key);
  fill('panel-busiest', `Busiest cells (${key})`, table(busiest.map((c) => [c.hex, formatNumber(c.value)])));
  fill('panel-flows', 'Top flows', table(topFlows(frame).map((f) => [`${f.origin.slice(0, 8)}… → ${f.dest.slice(0, 8)}…`, f.kind, formatNumber(f.persons)])));
  const origins = config?.breakdowns?.origin ?? [];
  fill('panel-origins', 'Origin mix (persons)', bars(breakdownTotals(breakdownFrames.origin, 'population.persons|origin', origins)));
  const categories = config?.breakdowns?.category ?? [];
  fill('panel-spend', 'Spend by category (CNY)', bars(breakdownTotals(breakdownFrames.category, 'payments.amount_cny|category', categories)));
  fill('panel-privacy', 'Privacy', table(manifestRows(manifest, frame?.privacy)));
}
