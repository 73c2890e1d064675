// The hover tooltip: where a cell is, its released values (provisional or final), its breakdown, and
// why a value is hidden.
// `cellTooltip` and `flowTooltip` are pure (tested); `renderTooltip` writes a model into the page.

import { el } from './dom.js';
import { DIMENSION_LABELS, categoryLabel, formatNumber, suppressionReason } from './format.js';
import { FINAL_LABEL, PROVISIONAL_LABEL, provisionalText } from './now.js';
import { FLOW_KINDS, flowLabel } from './panels.js';

export const TOOLTIP_OFFSET_PX = 14;
export const NO_DATA = 'no data';
export const LOADING = 'loading…';

/**
 * The parts of `key` along `dimension` in one cell's stats: [{label, text, hidden}]. The categories are
 * the fixed set when the dimension has one (`categories`), else those present (transit lines). A part
 * the stats do not hold is left out: it had no data.
 */
export function breakdownParts(stats, key, dimension, categories = null, lineNames = {}) {
  const prefix = `${key}|${dimension}=`;
  const cats = categories?.length ? categories : Object.keys(stats ?? {}).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  return cats
    .filter((c) => stats && `${prefix}${c}` in stats)
    .map((c) => {
      const value = stats[`${prefix}${c}`];
      return { label: categoryLabel(dimension, c, lineNames), text: formatNumber(value), hidden: value === null };
    });
}

/** One breakdown line: released parts with their numbers, then how many are hidden ("all hidden"). */
export function sectionText(parts) {
  const shown = parts.filter((p) => !p.hidden).map((p) => `${p.label} ${p.text}`);
  const hidden = parts.length - shown.length;
  if (!shown.length) return 'all hidden';
  return hidden ? `${shown.join(' · ')} · ${hidden} more hidden` : shown.join(' · ');
}

/**
 * The tooltip of a cell. `metrics` is layer -> {key, label, unit} (the layers shown as values), `layer`
 * the one on the map; `breakdowns` is dimension -> the cell's stats with that breakdown (null while
 * they load); `k` and `dominanceShare` come from the privacy manifest. `provisional` ({value, sd},
 * now.provisionalCell) is the provisional value the map draws for the cell of the layer shown, if any:
 * it is that layer's value, with its 90% interval; the other values and the breakdown stay final.
 */
export function cellTooltip({ hex, frame, place, metrics, layer, breakdowns = null, dimensions = [], categories = {}, lineNames = {}, k, dominanceShare, provisional = null }) {
  const stats = frame?.cells?.[hex] ?? {};
  const values = Object.entries(metrics).map(([name, m]) => {
    if (provisional && name === layer) return { label: m.label, text: provisionalText(provisional.value, provisional.sd), hidden: false, current: true, provisional: true };
    return {
      label: m.label,
      text: m.key in stats ? `${formatNumber(stats[m.key])}${stats[m.key] === null ? '' : ` ${m.unit}`}` : NO_DATA,
      hidden: stats[m.key] === null,
      current: name === layer,
    };
  });
  const key = metrics[layer]?.key;
  const sections = dimensions.map((dim) => ({
    label: DIMENSION_LABELS[dim] ?? dim,
    parts: breakdowns ? breakdownParts(breakdowns[dim], key, dim, categories[dim], lineNames) : [],
  }));
  const totalHidden = values.some((v) => v.current && v.hidden);
  const partHidden = sections.some((s) => s.parts.some((p) => p.hidden));
  const reason = suppressionReason(key, k, dominanceShare);
  return {
    title: place.label,
    subtitle: `H3 cell ${hex} · resolution ${frame?.res ?? provisional?.res ?? '?'}`,
    pane: provisional ? 'provisional' : 'final',
    paneText: provisional ? PROVISIONAL_LABEL : FINAL_LABEL,
    values,
    breakdownTitle: metrics[layer] ? `${metrics[layer].label}${provisional ? ' in the final window' : ''} by` : '',
    sections: breakdowns ? sections.filter((s) => s.parts.length).map((s) => ({ ...s, text: sectionText(s.parts) })) : [],
    loading: breakdowns === null && dimensions.length > 0,
    why: totalHidden ? `Hidden: ${reason}.` : partHidden ? `Hidden parts: ${reason}.` : null,
  };
}

/** The tooltip of an arc: "Futian → Nanshan", how many people and how they moved. */
export function flowTooltip(flow, places) {
  const from = places.place(flow.origin);
  const to = places.place(flow.dest);
  const f = { from: from.label, to: to.label };
  return {
    title: flowLabel(f),
    subtitle: FLOW_KINDS[flow.kind] ?? flow.kind,
    values: [{ label: 'People', text: formatNumber(flow.persons), hidden: flow.persons === null, current: true }],
    breakdownTitle: '',
    sections: [],
    loading: false,
    why: null,
  };
}

/** Where the tooltip box goes: beside the pointer, kept inside the viewport. */
export function tooltipPosition(x, y, box, viewport) {
  let left = x + TOOLTIP_OFFSET_PX;
  let top = y + TOOLTIP_OFFSET_PX;
  if (left + box.width > viewport.width) left = Math.max(0, x - TOOLTIP_OFFSET_PX - box.width);
  if (top + box.height > viewport.height) top = Math.max(0, viewport.height - box.height);
  return { left, top };
}

/** Show `model` in `node` at page pixel (x, y); a null model hides it. */
export function renderTooltip(node, model, x = 0, y = 0) {
  if (!model) {
    node.hidden = true;
    return;
  }
  const rows = el('table');
  for (const v of model.values) {
    const tr = rows.insertRow();
    tr.className = [v.current ? 'current' : '', v.hidden ? 'hidden-value' : ''].join(' ').trim();
    tr.insertCell().textContent = v.label;
    tr.insertCell().textContent = v.text;
  }
  const parts = [el('div', 'tooltip-title', model.title), el('div', 'tooltip-subtitle', model.subtitle)];
  if (model.paneText) parts.push(el('div', `tooltip-pane tooltip-pane-${model.pane}`, model.paneText));
  parts.push(rows);
  if (model.loading) parts.push(el('div', 'muted', `${model.breakdownTitle} ${LOADING}`));
  else if (model.sections.length) parts.push(el('div', 'tooltip-by', model.breakdownTitle));
  for (const s of model.sections) {
    const line = el('div', 'tooltip-section');
    line.append(el('span', 'tooltip-dim', `${s.label}: `), el('span', null, s.text));
    parts.push(line);
  }
  if (model.why) parts.push(el('div', 'tooltip-why', model.why));
  node.replaceChildren(...parts);
  node.hidden = false;
  const box = node.getBoundingClientRect();
  const { left, top } = tooltipPosition(x, y, box, { width: globalThis.innerWidth, height: globalThis.innerHeight });
  node.style.left = `${left}px`;
  node.style.top = `${top}px`;
}
