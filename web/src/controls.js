// The controls panel: the layer choices, breakdown and category, built from what the gateway offers
// (/api/v1/config), and its events passed on as plain values to the page's handlers.

import { categoryLabel, DIMENSION_LABELS } from './format.js';
import { breakdownChoices } from './layers.js';

function option(root, text, value) {
  const node = root.createElement('option');
  node.textContent = text;
  node.value = value;
  return node;
}

/** One radio per layer of `metrics` (layer -> {label}), `current` checked. */
export function layerChoices(root, metrics, current) {
  root.getElementById('layer-choices').replaceChildren(
    ...Object.entries(metrics).map(([layer, m]) => {
      const label = root.createElement('label');
      const radio = Object.assign(root.createElement('input'), { type: 'radio', name: 'layer', value: layer, checked: layer === current });
      label.append(radio, ` ${m.label}`);
      return label;
    }),
  );
}

/** The breakdown choices: total, then each dimension a metric offers with a fixed category set. */
export function breakdownOptions(root, config) {
  const dims = breakdownChoices(config.statistics, config.breakdowns);
  root.getElementById('breakdown').replaceChildren(
    option(root, 'total', ''), ...dims.map((d) => option(root, (DIMENSION_LABELS[d] ?? d).toLowerCase(), d)),
  );
}

/** The categories of `breakdown` (all, then each part); disabled without a breakdown. */
export function categoryOptions(root, config, breakdown) {
  const cats = breakdown ? config.breakdowns[breakdown] ?? [] : [];
  const select = root.getElementById('category');
  select.replaceChildren(...['', ...cats].map((c) => option(root, c ? categoryLabel(breakdown, c) : 'all', c)));
  select.disabled = !cats.length;
}

/**
 * Build the controls and bind them. `on` gets plain values: layer(name), hexes(shown), flows(shown),
 * breakdown(dimension or null), category(name or null), scrub().
 */
export function bindControls(root, { metrics, config, layer }, on) {
  layerChoices(root, metrics, layer);
  breakdownOptions(root, config);
  const $ = (id) => root.getElementById(id);
  for (const radio of root.querySelectorAll('input[name=layer]')) {
    radio.addEventListener('change', () => on.layer(radio.value));
  }
  $('toggle-hexes').addEventListener('change', (e) => on.hexes(e.target.checked));
  $('toggle-flows').addEventListener('change', (e) => on.flows(e.target.checked));
  $('breakdown').addEventListener('change', (e) => {
    const breakdown = e.target.value || null;
    categoryOptions(root, config, breakdown);
    on.breakdown(breakdown);
  });
  $('category').addEventListener('change', (e) => on.category(e.target.value || null));
  $('scrubber').addEventListener('input', () => on.scrub());
}
