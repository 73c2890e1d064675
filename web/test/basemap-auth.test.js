import { describe, expect, it } from 'vitest';
import { takeToken, tokenFromHash, TOKEN_KEY } from '../src/auth.js';
import { cityBounds, cityGeojson, cityStyle, contextLayers, hexToRgb, shortLineName } from '../src/basemap.js';

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
  it('draws district borders and names and named metro lines in the city file\'s colours over the data', () => {
    const { lines, labels } = contextLayers(makeCity());
    expect(lines.map((l) => [l.type, l.props.id])).toEqual([['PathLayer', 'district-borders'], ['PathLayer', 'metro-lines']]);
    expect(labels.map((l) => [l.type, l.props.id])).toEqual([['TextLayer', 'district-names'], ['TextLayer', 'line-names']]);
    const [borders, metro] = lines;
    expect(borders.props.getPath(borders.props.data[0]).at(-1)).toEqual([113, 22]); // closed ring
    expect(metro.props.getColor(metro.props.data[0])).toEqual([255, 0, 0]);
    const [districtNames, lineNames] = labels;
    expect(districtNames.props.data.map(districtNames.props.getText)).toEqual(['D']);
    expect(lineNames.props.getText(lineNames.props.data[0])).toBe('One');
    expect(lineNames.props.getPosition(lineNames.props.data[0])).toEqual([113.2, 22.2]); // at the last station
    expect(JSON.stringify(labels.map((l) => l.props))).not.toMatch(/https?:/);
  });
  it.each([['#00a650', [0, 166, 80]], ['F58220', [245, 130, 32]], ['red', [150, 150, 150]], [undefined, [150, 150, 150]]])(
    'colour %s is %j', (color, rgb) => expect(hexToRgb(color)).toEqual(rgb),
  );
  it('shortens line names to what is drawn on the map', () => {
    expect(shortLineName('Line 11 (Airport)')).toBe('Line 11');
    expect(shortLineName('Line 2')).toBe('Line 2');
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
