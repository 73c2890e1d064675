// The legend: the colour scale (its top is the largest value shown, rounded), what hidden and empty
// cells look like, what provisional (hatched) and final (solid) cells are, and the metro lines with
// their colours from the city file.

import { legendStops, SUPPRESSED_COLOR } from './layers.js';
import { partLabel } from './format.js';

// below this top, stops are labelled with one decimal (a scale to 2 reads 0, 0.5, 1, 1.5, 2)
export const DECIMALS_BELOW = 10;
export const NOTHING_RELEASED = 'no value released in view';

const rgba = (c) => `rgba(${c[0]},${c[1]},${c[2]},${(c[3] ?? 255) / 255})`;

/**
 * What the legend shows for `metric` ({label, unit}) drawn with stat `key` on a scale up to `max`;
 * `released` is false when no cell in view has a released value (the scale then means nothing);
 * `span` the window the layer covers ("08:00–08:15", format.spanLabel); `panes` the key of provisional
 * and final cells (now.paneKey; null before any provisional value came).
 */
export function legendModel(metric, key, max, k, metroLines = [], released = true, span = '', panes = null) {
  const part = partLabel(key);
  const digits = new Intl.NumberFormat('en', { maximumFractionDigits: max < DECIMALS_BELOW ? 1 : 0 });
  return {
    // the window the shown layer covers, e.g. "Spend (CNY) · 08:00–08:15"
    title: `${metric.label} (${metric.unit})${span ? ` · ${span}` : ''}`,
    part: [part ? `only ${part}` : 'total', released ? '' : NOTHING_RELEASED].filter(Boolean).join(' · '),
    stops: legendStops(max).map((s) => ({ label: released ? digits.format(s.value) : '', color: rgba(s.color) })),
    suppressed: rgba(SUPPRESSED_COLOR),
    suppressedLabel: k ? `hidden: fewer than ${k} people, or protecting a hidden neighbour` : 'hidden (too few people to show)',
    lines: metroLines.map((l) => ({ name: l.name, color: l.color })),
    panes: panes?.items ?? [],
    panesNote: panes?.note ?? '',
  };
}

/** A list of (colour swatch, label) items: the colour scale and the metro lines. */
function swatchList(tag, className, itemTag, itemClass, swatchClass, items) {
  const list = document.createElement(tag);
  list.className = className;
  for (const [color, label] of items) {
    const item = document.createElement(itemTag);
    item.className = itemClass;
    item.innerHTML = `<span class="${swatchClass}"></span><span></span>`;
    item.children[0].style.background = color;
    item.children[1].textContent = label;
    list.append(item);
  }
  return list;
}

export function renderLegend(el, model) {
  el.replaceChildren();
  const title = document.createElement('div');
  title.className = 'legend-title';
  title.textContent = model.title;
  const keyLine = document.createElement('div');
  keyLine.className = 'legend-key';
  keyLine.textContent = model.part;
  const scale = swatchList('div', 'legend-scale', 'div', 'legend-stop', 'swatch',
    model.stops.map((st) => [st.color, st.label]));
  const special = document.createElement('div');
  special.className = 'legend-special';
  special.innerHTML = '<span class="swatch suppressed"></span><span></span><span class="swatch empty"></span><span>no data</span>';
  special.children[0].style.background = model.suppressed;
  special.children[1].textContent = model.suppressedLabel;
  const lines = swatchList('div', 'legend-lines', 'span', 'legend-line', 'line-swatch',
    model.lines.map((l) => [l.color, l.name]));
  el.append(title, keyLine, scale, special, ...paneNodes(model), lines);
}

/** Hatched = provisional, solid = final (the swatches' look is in style.css), and why none is provisional. */
function paneNodes(model) {
  const nodes = [];
  if (model.panes.length) {
    const list = document.createElement('div');
    list.className = 'legend-panes';
    for (const p of model.panes) {
      const item = document.createElement('span');
      item.className = `legend-pane legend-pane-${p.kind}`;
      item.innerHTML = `<span class="swatch pane-${p.kind}"></span><span></span>`;
      item.children[1].textContent = p.label;
      list.append(item);
    }
    nodes.push(list);
  }
  if (model.panesNote) {
    const note = document.createElement('div');
    note.className = 'legend-key legend-panes-note';
    note.textContent = model.panesNote;
    nodes.push(note);
  }
  return nodes;
}
