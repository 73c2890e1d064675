import { describe, expect, it } from 'vitest';
import { takeToken, tokenFromHash, TOKEN_KEY } from '../src/auth.js';
import { cityBounds, cityGeojson, cityStyle } from '../src/basemap.js';
import { breakdownTotals, busiestCells, manifestRows, topFlows } from '../src/panels.js';

function makeCity(overrides = {}) {
  return {
    name: 'Tiny', bbox: { min_lat: 22, max_lat: 23, min_lng: 113, max_lng: 114 },
    outline: [[113, 22], [114, 22], [114, 23]],
    districts: [{ id: 'd', name: 'D', polygon: [[113, 22], [113.5, 22], [113.5, 22.5], [113, 22]] }],
    metro_lines: [{ id: 'L1', name: 'One', color: '#ff0000', stations: [{ id: 's', name: 'S', lat: 22.1, lng: 113.1 }, { id: 't', name: 'T', lat: 22.2, lng: 113.2 }] }],
    ...overrides,
  };
}

describe('basemap', () => {
  it('draws districts, outline, lines and stations from the city only (no URLs)', () => {
    const style = cityStyle(makeCity());
    expect(JSON.stringify(style)).not.toMatch(/https?:/);
    expect(style.layers.map((l) => l.id)).toEqual(['background', 'districts', 'district-edges', 'outline', 'metro', 'stations']);
    const g = cityGeojson(makeCity());
    expect(g.outline.features[0].geometry.coordinates.at(-1)).toEqual([113, 22]); // ring closed
    expect(g.lines.features[0].geometry.coordinates).toEqual([[113.1, 22.1], [113.2, 22.2]]);
    expect(g.stations.features).toHaveLength(2);
    expect(cityBounds(makeCity())).toEqual([[113, 22], [114, 23]]);
  });
});

describe('panels', () => {
  const frame = {
    cells: {
      a: { k: 5, 'p|origin=east': 3, 'p|origin=north': null },
      b: { k: 9, 'p|origin=east': 4, 'p|origin=north': 12 },
      c: { k: null },
    },
    flows: [{ persons: 3 }, { persons: null }, { persons: 8 }],
  };
  it('busiest cells skip suppressed and sort by value', () => {
    expect(busiestCells(frame, 'k')).toEqual([{ hex: 'b', value: 9 }, { hex: 'a', value: 5 }]);
  });
  it('top flows skip suppressed', () => expect(topFlows(frame).map((f) => f.persons)).toEqual([8, 3]));
  it('breakdown totals sum released parts and count suppressed ones', () => {
    expect(breakdownTotals(frame, 'p|origin', ['east', 'north', 'international'])).toEqual({
      east: { value: 7, suppressedCells: 0 }, north: { value: 12, suppressedCells: 1 }, international: { value: 0, suppressedCells: 0 },
    });
  });
  it('manifest rows show scalars and this window\'s spend', () => {
    const rows = manifestRows({ min_persons: 10, nested: { x: 1 } }, { mechanism: 'laplace', epsilon: 0.5 });
    expect(rows).toEqual([['min persons', '10'], ['this window: mechanism', 'laplace'], ['this window: epsilon spent', '0.5']]);
  });
});

describe('token', () => {
  it('reads the fragment, stores it, and clears the fragment', () => {
    const store = new Map();
    const storage = { setItem: (k, v) => store.set(k, v), getItem: (k) => store.get(k) ?? null };
    const calls = [];
    const history = { replaceState: (...a) => calls.push(a) };
    expect(takeToken({ hash: '#token=abc', pathname: '/', search: '' }, history, storage)).toBe('abc');
    expect(store.get(TOKEN_KEY)).toBe('abc');
    expect(calls).toEqual([[null, '', '/']]);
    expect(takeToken({ hash: '', pathname: '/', search: '' }, history, storage)).toBe('abc');
    expect(tokenFromHash('#x=1')).toBeNull();
  });
});
