import { describe, expect, it } from 'vitest';
import {
  ARC_LAYER_ID, HATCH_LAYER_ID, HEX_LAYER_ID, arcRows, SUPPRESSED_COLOR, buildLayers, colorFor, hexRows, breakdownChoices, layerMetrics, legendStops, resForZoom, scaleMax, statKey,
} from '../src/layers.js';
import { makeHatch, makeStableRows } from '../src/hatch.js';

const STATISTICS = { population: { persons: ['gender', 'age_band', 'origin'] }, payments: { amount_cny: ['category', 'origin'] } };

function makeFrame(overrides = {}) {
  return {
    res: 7,
    window_start_ms: 60000,
    cells: {
      a: { 'population.persons': 40, 'population.persons|gender=F': 22, 'payments.amount_cny': 300 },
      b: { 'population.persons': null, 'population.persons|gender=F': null },
      c: { 'transit.tap_in': 12 },
    },
    flows: [
      { origin: 'a', dest: 'b', kind: 'transit', persons: 14 },
      { origin: 'b', dest: 'c', kind: 'movement', persons: null },
    ],
    ...overrides,
  };
}
const baseState = { layer: 'population', showHexes: true, showFlows: true, breakdown: null, category: null, statistics: STATISTICS };
const centerOf = (h) => [h.charCodeAt(0), 0];

describe('resForZoom', () => {
  it.each([[14, 8], [11, 7], [9, 6], [3, 6]])('zoom %d -> res %d', (zoom, res) => {
    expect(resForZoom(zoom, [8, 7, 6])).toBe(res);
  });
  it('falls back to the coarsest offered', () => {
    expect(resForZoom(14, [7, 6])).toBe(7);
    expect(resForZoom(3, [9, 8])).toBe(8);
  });
});

describe('statKey', () => {
  it('adds the breakdown part only when the metric has that dimension', () => {
    expect(statKey('population', 'gender', 'F', STATISTICS)).toBe('population.persons|gender=F');
    expect(statKey('payments', 'gender', 'F', STATISTICS)).toBe('payments.amount_cny');
    expect(statKey('population', 'gender', null, STATISTICS)).toBe('population.persons');
  });
});

describe('layerMetrics', () => {
  it('follows the statistics the gateway serves, with known metrics and labels', () => {
    const got = layerMetrics({ ...STATISTICS, transit: { tap_out: [], tap_in: ['mode'] }, active: { persons: ['gender'] } });
    expect(Object.keys(got)).toEqual(['population', 'payments', 'transit', 'active']);
    expect(got.transit).toEqual({ key: 'transit.tap_in', label: 'Transit tap-ins', unit: 'taps' });
    expect(got.active).toEqual({ key: 'active.persons', label: 'People active', unit: 'persons' });
    expect(layerMetrics({ weather: { rain_mm: [] } }).weather).toEqual({ key: 'weather.rain_mm', label: 'weather rain mm', unit: 'rain mm' });
  });
  it('falls back to the known layers without a config', () => {
    expect(layerMetrics(null).payments.key).toBe('payments.amount_cny');
  });
});

describe('breakdownChoices', () => {
  it('offers the dimensions of the released statistics that have fixed categories', () => {
    const statistics = { ...STATISTICS, transit: { tap_in: ['mode', 'line'] } };
    const breakdowns = { gender: ['F', 'M'], age_band: ['18-24'], origin: ['east'], category: ['food'], mode: ['metro'] };
    expect(breakdownChoices(statistics, breakdowns)).toEqual(['gender', 'age_band', 'origin', 'category', 'mode']);
    expect(breakdownChoices(null, breakdowns)).toEqual([]);
  });
});

describe('hexRows', () => {
  it('keeps suppressed cells as suppressed and leaves out cells without the key', () => {
    const rows = hexRows(makeFrame(), 'population.persons');
    expect(rows).toEqual([
      { hex: 'a', value: 40, suppressed: false },
      { hex: 'b', value: null, suppressed: true },
    ]);
  });
  it('is empty without a frame', () => expect(hexRows(null, 'x')).toEqual([]));
});

describe('colour scale', () => {
  it.each([
    [[], 1], [[0.34], 0.34], [[40], 40], [[27, null], 27], [[120, 7], 120], [[1243], 1300], [[1000], 1000], [[99.5], 100],
  ])('the scale top of %j is %d: the maximum rounded up to two digits', (values, max) => {
    expect(scaleMax(values)).toBe(max);
  });
  it('suppressed has its own colour, distinct from every value colour', () => {
    expect(colorFor(null, 10)).toBe(SUPPRESSED_COLOR);
    for (const v of [0, 2.5, 5, 10]) expect(colorFor(v, 10).slice(0, 3)).not.toEqual(SUPPRESSED_COLOR.slice(0, 3));
  });
  it('darkens with the value and clamps', () => {
    const [lo, hi] = [colorFor(0, 10), colorFor(10, 10)];
    expect(hi[1]).toBeLessThan(lo[1]);
    expect(colorFor(99, 10)).toEqual(hi);
  });
  it('legend has five stops from 0 to max', () => {
    expect(legendStops(200).map((s) => s.value)).toEqual([0, 50, 100, 150, 200]);
  });
});

describe('buildLayers', () => {
  it('builds a hexagon, an (empty) hatching and an arc layer with stable ids', () => {
    const layers = buildLayers(makeFrame(), baseState, centerOf);
    expect(layers.map((l) => l.props.id)).toEqual([HEX_LAYER_ID, HATCH_LAYER_ID, ARC_LAYER_ID]);
    expect(layers[0].props.data).toHaveLength(2);
    expect(layers[0].max).toBe(40);
    expect(layers[1].props.data).toEqual([]); // no provisional values
    expect(layers[2].props.data).toEqual([{ origin: 'a', dest: 'b', kind: 'transit', persons: 14 }]);
    expect(layers[2].props.getSourcePosition(layers[2].props.data[0])).toEqual([97, 0]);
  });
  it('a layer toggle changes what is drawn', () => {
    expect(buildLayers(makeFrame(), { ...baseState, showFlows: false }, centerOf).map((l) => l.type)).toEqual(['H3HexagonLayer', 'PathLayer']);
    expect(buildLayers(makeFrame(), { ...baseState, showHexes: false }, centerOf).map((l) => l.type)).toEqual(['ArcLayer']);
    const transit = buildLayers(makeFrame(), { ...baseState, layer: 'transit' }, centerOf)[0];
    expect(transit.props.data.map((r) => r.hex)).toEqual(['c']);
  });
  it('a breakdown category selects that part', () => {
    const hex = buildLayers(makeFrame(), { ...baseState, breakdown: 'gender', category: 'F' }, centerOf)[0];
    expect(hex.key).toBe('population.persons|gender=F');
    expect(hex.props.data.map((r) => r.value)).toEqual([22, null]);
  });
  it('suppressed cells get the suppressed fill and a heavier outline', () => {
    const hex = buildLayers(makeFrame(), baseState, centerOf)[0];
    const b = hex.props.data.find((r) => r.hex === 'b');
    expect(hex.props.getFillColor(b)).toBe(SUPPRESSED_COLOR);
    expect(hex.props.getLineWidth(b)).toBeGreaterThan(hex.props.getLineWidth(hex.props.data[0]));
  });
});

describe('buildLayers with provisional values', () => {
  const now = { res: 7, tick_ms: 200_000, cells: { a: { 'population.persons': 55 }, b: { 'population.persons': null }, d: { 'population.persons': 12 } }, noise_sd: { a: 3, b: 3, d: 3 } };
  const segmentsOf = (hex) => [[[hex.charCodeAt(0), 0], [0, 1]]];

  it('draws them in place of the final values, hatched; the final cells without one stay solid', () => {
    const [hex, hatch] = buildLayers(makeFrame(), baseState, centerOf, { now, hatch: makeHatch(segmentsOf) });
    expect(hex.props.data).toEqual([
      { hex: 'a', value: 55, suppressed: false, provisional: true, sd: 3 },
      { hex: 'b', value: null, suppressed: true },
      { hex: 'd', value: 12, suppressed: false, provisional: true, sd: 3 },
    ]);
    expect(hex.max).toBe(55); // the scale covers what is drawn
    expect(hatch.props.id).toBe(HATCH_LAYER_ID);
    expect(hatch.props.data).toEqual([{ hex: 'a', path: [[97, 0], [0, 1]] }, { hex: 'd', path: [[100, 0], [0, 1]] }]);
    expect(hatch.props.pickable).toBe(false);
  });

  it('updates values in place between messages: the same arrays, a new colour trigger', () => {
    const draw = { stable: makeStableRows(), hatch: makeHatch(segmentsOf) };
    const first = buildLayers(makeFrame(), baseState, centerOf, { ...draw, now });
    const next = { ...now, cells: { ...now.cells, a: { 'population.persons': 57 } } };
    const second = buildLayers(makeFrame(), baseState, centerOf, { ...draw, now: next });
    expect(second[0].props.data).toBe(first[0].props.data);
    expect(second[0].props.data[0].value).toBe(57);
    expect(second[1].props.data).toBe(first[1].props.data);
    expect(second[0].props.id).toBe(first[0].props.id);
    expect(second[0].props.updateTriggers.getFillColor).not.toEqual(first[0].props.updateTriggers.getFillColor);
    const third = buildLayers(makeFrame(), baseState, centerOf, { ...draw, now: next });
    expect(third[0].props.updateTriggers).toEqual(second[0].props.updateTriggers); // nothing new: nothing recomputed
  });
});

describe('arcRows', () => {
  it('draws only the largest released flows between different cells, largest first', () => {
    const flows = [
      { origin: 'a', dest: 'b', kind: 'movement', persons: 12 },
      { origin: 'a', dest: 'c', kind: 'movement', persons: null },
      { origin: 'b', dest: 'b', kind: 'movement', persons: 99 },
      { origin: 'c', dest: 'a', kind: 'transit', persons: 30 },
      { origin: 'b', dest: 'c', kind: 'movement', persons: 20 },
    ];
    expect(arcRows({ flows }, 2).map((f) => f.persons)).toEqual([30, 20]);
    expect(arcRows({ flows }).length).toBe(3);
    expect(arcRows(null)).toEqual([]);
  });
});
