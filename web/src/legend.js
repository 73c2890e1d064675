// The legend: the colour scale with its numbers, and what suppressed and empty cells look like.

import { legendStops, METRICS, SUPPRESSED_COLOR } from './layers.js';
import { formatNumber } from './panels.js';

const rgba = (c) => `rgba(${c[0]},${c[1]},${c[2]},${(c[3] ?? 255) / 255})`;

export function legendModel(layer, key, max) {
  return {
    title: `${METRICS[layer].label} (${METRICS[layer].unit})`,
    key,
    stops: legendStops(max).map((s) => ({ label: formatNumber(s.value), color: rgba(s.color) })),
    suppressed: rgba(SUPPRESSED_COLOR),
  };
}

export function renderLegend(el, model) {
  el.replaceChildren();
  const title = document.createElement('div');
  title.className = 'legend-title';
  title.textContent = model.title;
  const keyLine = document.createElement('div');
  keyLine.className = 'legend-key';
  keyLine.textContent = model.key;
  const scale = document.createElement('div');
  scale.className = 'legend-scale';
  for (const s of model.stops) {
    const stop = document.createElement('div');
    stop.className = 'legend-stop';
    stop.innerHTML = '<span class="swatch"></span><span></span>';
    stop.children[0].style.background = s.color;
    stop.children[1].textContent = s.label;
    scale.append(stop);
  }
  const special = document.createElement('div');
  special.className = 'legend-special';
  special.innerHTML =
    '<span class="swatch suppressed"></span><span>suppressed (too few people to show)</span>' +
    '<span class="swatch empty"></span><span>no data</span>';
  special.children[0].style.background = model.suppressed;
  el.append(title, keyLine, scale, special);
}
