// The offline base map, drawn only from the city model (no tiles, no glyphs, no URLs): a MapLibre style
// under the data, and deck.gl layers over it (district borders and names, named metro lines), since
// the hexagons would hide the style's lines and MapLibre cannot draw text without a glyph server.

export const BACKGROUND = '#0b1622';
export const DISTRICT_FILL = '#15283a';
export const DISTRICT_LINE = '#2e4d69';
export const OUTLINE = '#5d87ad';
export const BORDER_COLOR = [190, 215, 240, 170];
export const DISTRICT_NAME_COLOR = [240, 246, 252, 255];
export const NAME_OUTLINE = [11, 22, 34, 255];
export const DISTRICT_NAME_PX = 15;
export const LINE_NAME_PX = 11;
export const METRO_WIDTH_PX = 2;

const closed = (ring) => {
  const r = ring.map(([lng, lat]) => [lng, lat]);
  const [a, b] = [r[0], r[r.length - 1]];
  if (a[0] !== b[0] || a[1] !== b[1]) r.push(a);
  return r;
};

export function cityGeojson(city) {
  const districts = city.districts.map((d) => ({
    type: 'Feature',
    properties: { id: d.id, name: d.name },
    geometry: { type: 'Polygon', coordinates: [closed(d.polygon)] },
  }));
  const lines = (city.metro_lines ?? []).map((l) => ({
    type: 'Feature',
    properties: { id: l.id, name: l.name, color: l.color },
    geometry: { type: 'LineString', coordinates: l.stations.map((s) => [s.lng, s.lat]) },
  }));
  const stations = (city.metro_lines ?? []).flatMap((l) =>
    l.stations.map((s) => ({
      type: 'Feature',
      properties: { id: s.id, name: s.name, color: l.color },
      geometry: { type: 'Point', coordinates: [s.lng, s.lat] },
    })),
  );
  const outline = {
    type: 'Feature',
    properties: { name: city.name },
    geometry: { type: 'LineString', coordinates: closed(city.outline) },
  };
  const fc = (features) => ({ type: 'FeatureCollection', features });
  return { districts: fc(districts), lines: fc(lines), stations: fc(stations), outline: fc([outline]) };
}

/** A complete MapLibre style for `city`. */
export function cityStyle(city) {
  const g = cityGeojson(city);
  return {
    version: 8,
    name: `${city.name} (offline)`,
    sources: {
      districts: { type: 'geojson', data: g.districts },
      lines: { type: 'geojson', data: g.lines },
      stations: { type: 'geojson', data: g.stations },
      outline: { type: 'geojson', data: g.outline },
    },
    layers: [
      { id: 'background', type: 'background', paint: { 'background-color': BACKGROUND } },
      { id: 'districts', type: 'fill', source: 'districts', paint: { 'fill-color': DISTRICT_FILL } },
      { id: 'district-edges', type: 'line', source: 'districts', paint: { 'line-color': DISTRICT_LINE, 'line-width': 1 } },
      { id: 'outline', type: 'line', source: 'outline', paint: { 'line-color': OUTLINE, 'line-width': 2 } },
      { id: 'metro', type: 'line', source: 'lines', paint: { 'line-color': ['get', 'color'], 'line-width': 2, 'line-opacity': 0.8 } },
      { id: 'stations', type: 'circle', source: 'stations', paint: { 'circle-radius': 2, 'circle-color': ['get', 'color'] } },
    ],
  };
}

/** [[west, south], [east, north]] of the city, for fitBounds. */
export function cityBounds(city) {
  const b = city.bbox;
  return [
    [b.min_lng, b.min_lat],
    [b.max_lng, b.max_lat],
  ];
}

/** "#f58220" -> [245, 130, 32]; anything else -> a neutral grey. */
export function hexToRgb(color) {
  const m = /^#?([0-9a-f]{6})$/i.exec(color ?? '');
  if (!m) return [150, 150, 150];
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** "Line 1 (Luobao)" -> "Line 1": the short name drawn at a line's end. */
export const shortLineName = (name) => name.replace(/\s*\(.*\)\s*$/, '');

/**
 * deck.gl layer descriptors drawn over the data: {lines: [district borders, metro lines], labels:
 * [district names, line names]}. screen-draw.js puts the lines above the hexagons and the labels on top.
 */
export function contextLayers(city) {
  const g = cityGeojson(city);
  const districts = g.districts.features.map((f) => ({ name: f.properties.name, path: f.geometry.coordinates[0] }));
  const lines = g.lines.features.map((f) => ({ name: f.properties.name, color: hexToRgb(f.properties.color), path: f.geometry.coordinates }));
  const text = { fontFamily: 'system-ui, sans-serif', fontSettings: { sdf: true }, outlineColor: NAME_OUTLINE, outlineWidth: 4, billboard: true };
  return {
    lines: [
      { type: 'PathLayer', props: { id: 'district-borders', data: districts, getPath: (d) => d.path, getColor: BORDER_COLOR, getWidth: 1.5, widthUnits: 'pixels' } },
      { type: 'PathLayer', props: { id: 'metro-lines', data: lines, getPath: (d) => d.path, getColor: (d) => d.color, getWidth: METRO_WIDTH_PX, widthUnits: 'pixels', jointRounded: true } },
    ],
    labels: [
      {
        type: 'TextLayer',
        props: {
          id: 'district-names', data: city.districts, ...text,
          getPosition: (d) => d.center, getText: (d) => d.name, getSize: DISTRICT_NAME_PX, getColor: DISTRICT_NAME_COLOR, fontWeight: 600,
        },
      },
      {
        type: 'TextLayer',
        props: {
          id: 'line-names', data: lines, ...text,
          getPosition: (d) => d.path.at(-1), getText: (d) => shortLineName(d.name), getSize: LINE_NAME_PX, getColor: (d) => [...d.color, 255],
          getTextAnchor: 'start', getPixelOffset: [6, 0],
        },
      },
    ],
  };
}
