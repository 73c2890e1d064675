// @vitest-environment happy-dom
import { describe, expect, it } from 'vitest';
import { SUPPRESSED_COLOR } from '../src/layers.js';
import { legendModel, renderLegend } from '../src/legend.js';
import { paneKey } from '../src/now.js';
import { LOADING, NO_DATA, breakdownParts, cellTooltip, flowTooltip, renderTooltip, sectionText, tooltipPosition } from '../src/tooltip.js';

const METRICS = {
  population: { key: 'population.persons', label: 'People present', unit: 'persons' },
  payments: { key: 'payments.amount_cny', label: 'Spend', unit: 'CNY' },
  transit: { key: 'transit.tap_in', label: 'Transit tap-ins', unit: 'taps' },
};
const CATEGORIES = { gender: ['F', 'M'], age_band: ['18-24', '25-34', '35-44'], origin: ['guangdong', 'east'] };
const PLACES = { place: (hex) => ({ label: { a: 'Futian · near Gangxia station', b: 'Nanshan' }[hex] }) };

function makeFrame(cells) {
  return { res: 7, window_start_ms: 60_000, cells };
}

function tooltipFor(stats, breakdowns = null, overrides = {}) {
  return cellTooltip({
    hex: 'a', frame: makeFrame({ a: stats }), place: PLACES.place('a'), metrics: METRICS, layer: 'population',
    breakdowns, dimensions: ['gender', 'age_band', 'origin'], categories: CATEGORIES, k: 10, dominanceShare: 0.5, ...overrides,
  });
}

describe('breakdown parts', () => {
  const stats = { 'p.n': 30, 'p.n|gender=F': 18, 'p.n|gender=M': null, 'p.n|line=L1': 4, 'p.n|line=bus-local': null };
  it('follow the fixed categories, leaving out parts without data', () => {
    expect(breakdownParts(stats, 'p.n', 'gender', ['F', 'M', 'X'])).toEqual([
      { label: 'women', text: '18', hidden: false }, { label: 'men', text: 'hidden', hidden: true },
    ]);
  });
  it('take the categories present when the dimension has no fixed set (transit lines)', () => {
    expect(breakdownParts(stats, 'p.n', 'line', null, { L1: 'Line 1 (Luobao)' }).map((p) => p.label)).toEqual(['Line 1 (Luobao)', 'local buses']);
    expect(breakdownParts(undefined, 'p.n', 'gender', ['F'])).toEqual([]);
  });
  it.each([
    [[{ label: 'women', text: '18', hidden: false }, { label: 'men', text: '12', hidden: false }], 'women 18 · men 12'],
    [[{ label: 'women', text: '18', hidden: false }, { label: 'men', text: 'hidden', hidden: true }], 'women 18 · 1 more hidden'],
    [[{ label: 'women', text: 'hidden', hidden: true }], 'all hidden'],
  ])('read as one line: %j', (parts, text) => expect(sectionText(parts)).toBe(text));
});

describe('cell tooltip', () => {
  it('names the place and lists every layer\'s value, the shown one first-class', () => {
    const t = tooltipFor({ 'population.persons': 40, 'transit.tap_in': null });
    expect(t.title).toBe('Futian · near Gangxia station');
    expect(t.subtitle).toBe('H3 cell a · resolution 7');
    expect(t.values).toEqual([
      { label: 'People present', text: '40 persons', hidden: false, current: true },
      { label: 'Spend', text: NO_DATA, hidden: false, current: false },
      { label: 'Transit tap-ins', text: 'hidden', hidden: true, current: false },
    ]);
    expect(t.loading).toBe(true);
    expect(t.why).toBeNull(); // the hidden tap-ins are not the layer on the map
  });
  it('shows the breakdown and says why a value is hidden', () => {
    const breakdowns = {
      gender: { 'population.persons|gender=F': 22, 'population.persons|gender=M': 18 },
      age_band: { 'population.persons|age_band=18-24': null, 'population.persons|age_band=25-34': 31, 'population.persons|age_band=35-44': null },
      origin: {},
    };
    const t = tooltipFor({ 'population.persons': 40 }, breakdowns);
    expect(t.breakdownTitle).toBe('People present by');
    expect(t.sections.map((s) => [s.label, s.text])).toEqual([['Gender', 'women 22 · men 18'], ['Age', '25-34 31 · 2 more hidden']]);
    expect(t.why).toBe('Hidden parts: fewer than 10 people or hidden so that a neighbouring hidden value cannot be worked out.');
  });
  it('gives the reason for a hidden total, with the dominance rule for spend', () => {
    expect(tooltipFor({ 'population.persons': null }).why).toMatch(/^Hidden: fewer than 10 people/);
    const spend = tooltipFor({ 'payments.amount_cny': null }, {}, { layer: 'payments', k: 15 });
    expect(spend.why).toContain('fewer than 15 people');
    expect(spend.why).toContain('one payer makes up more than 50% of it');
  });
  it('gives a provisional cell\'s value with its 90% interval, and says a final cell is final', () => {
    const t = tooltipFor({ 'population.persons': 40, 'transit.tap_in': 3 }, null, { provisional: { value: 1234, sd: 37.6 } });
    expect(t.values[0]).toEqual({ label: 'People present', text: '≈ 1,234 people (provisional; 90% interval 1,172–1,296)', hidden: false, current: true, provisional: true });
    expect(t.values[2].text).toBe('3 taps'); // the other layers' values stay final
    expect([t.pane, t.paneText]).toEqual(['provisional', 'provisional (updates every 2 s, noisy)']);
    expect(t.breakdownTitle).toBe('People present in the final window by');
    expect(tooltipFor({ 'population.persons': null }, null, { provisional: { value: 60, sd: 37.6 } }).why).toBeNull();
    const final = tooltipFor({ 'population.persons': 40 });
    expect([final.pane, final.paneText, final.values[0].text]).toEqual(['final', 'final (window closed)', '40 persons']);
    const node = document.createElement('div');
    renderTooltip(node, t, 1, 1);
    expect(node.querySelector('.tooltip-pane-provisional').textContent).toBe('provisional (updates every 2 s, noisy)');
    expect(node.textContent).toContain('≈ 1,234 people (provisional; 90% interval 1,172–1,296)');
  });
  it('names a flow by its districts', () => {
    const t = flowTooltip({ origin: 'a', dest: 'b', kind: 'transit', persons: 1240 }, PLACES);
    expect(t.title).toBe('Futian · near Gangxia station → Nanshan');
    expect(t.subtitle).toBe('by metro or bus');
    expect(t.values[0].text).toBe('1,240');
  });
  it('stays inside the viewport', () => {
    const view = { width: 1000, height: 800 };
    expect(tooltipPosition(100, 100, { width: 200, height: 100 }, view)).toEqual({ left: 114, top: 114 });
    expect(tooltipPosition(900, 760, { width: 200, height: 100 }, view)).toEqual({ left: 686, top: 700 });
  });
  it('renders its words, and hides without a model', () => {
    const node = document.createElement('div');
    renderTooltip(node, tooltipFor({ 'population.persons': null }), 10, 10);
    expect(node.hidden).toBe(false);
    expect(node.querySelector('.tooltip-title').textContent).toBe('Futian · near Gangxia station');
    expect(node.textContent).toContain('People presenthidden');
    expect(node.textContent).toContain(`People present by ${LOADING}`);
    expect(node.querySelector('.tooltip-why').textContent).toMatch(/fewer than 10 people/);
    renderTooltip(node, null);
    expect(node.hidden).toBe(true);
  });
});

describe('legend', () => {
  const lines = [{ id: 'L1', name: 'Line 1 (Luobao)', color: '#00a650' }];
  it('tops the scale at the current maximum and names hidden cells with k', () => {
    const m = legendModel(METRICS.population, 'population.persons', 1300, 10, lines);
    expect(m.title).toBe('People present (persons)');
    expect(m.part).toBe('total');
    expect(m.stops.map((s) => s.label)).toEqual(['0', '325', '650', '975', '1,300']);
    expect(m.suppressedLabel).toBe('hidden: fewer than 10 people, or protecting a hidden neighbour');
    expect(m.suppressed).toBe(`rgba(${SUPPRESSED_COLOR.slice(0, 3).join(',')},${SUPPRESSED_COLOR[3] / 255})`);
    expect(legendModel(METRICS.population, 'population.persons|gender=F', 10, 10).part).toBe('only gender: women');
    // the window the shown layer covers, in the title
    expect(legendModel(METRICS.population, 'population.persons', 10, 10, [], true, '08:00–08:15').title).toMatch(/· 08:00–08:15$/);
  });
  it('labels a small scale with a decimal, and says when nothing in view is released', () => {
    expect(legendModel(METRICS.transit, 'transit.tap_in', 2, 10).stops.map((s) => s.label)).toEqual(['0', '0.5', '1', '1.5', '2']);
    const empty = legendModel(METRICS.transit, 'transit.tap_in', 1, 10, [], false);
    expect(empty.part).toBe('total · no value released in view');
    expect(empty.stops.map((s) => s.label)).toEqual(['', '', '', '', '']);
  });
  it('keys hatched provisional and solid final cells once provisional values come, or says why there are none', () => {
    expect(legendModel(METRICS.population, 'population.persons', 40, 10).panes).toEqual([]);
    const panes = paneKey({ hasNow: true, drawn: true, state: {} });
    const node = document.createElement('div');
    renderLegend(node, legendModel(METRICS.population, 'population.persons', 40, 10, lines, true, '', panes));
    expect([...node.querySelectorAll('.legend-pane')].map((p) => [p.className, p.textContent])).toEqual([
      ['legend-pane legend-pane-provisional', 'provisional (updates every 2 s, noisy)'], ['legend-pane legend-pane-final', 'final (window closed)'],
    ]);
    expect(node.querySelector('.swatch.pane-provisional')).not.toBeNull();
    renderLegend(node, legendModel(METRICS.transit, 'transit.tap_in', 40, 10, lines, true, '', paneKey({ hasNow: true, drawn: false, state: { layer: 'transit' } })));
    expect(node.querySelector('.legend-panes-note').textContent).toBe('provisional values are only for people present');
  });
  it('renders the scale, the hidden swatch and the metro lines', () => {
    const node = document.createElement('div');
    renderLegend(node, legendModel(METRICS.population, 'population.persons', 40, 10, lines));
    expect(node.querySelectorAll('.legend-stop')).toHaveLength(5);
    expect(node.textContent).toContain('hidden: fewer than 10 people');
    expect(node.querySelector('.legend-line').textContent).toBe('Line 1 (Luobao)');
  });
});
