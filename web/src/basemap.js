// The offline base map: a MapLibre style drawn only from the city model (no tiles, no glyphs, no URLs).

export const BACKGROUND = '#0b1622';
export const DISTRICT_FILL = '#15283a';
export const DISTRICT_LINE = '#2e4d69';
export const OUTLINE = '#5d87ad';

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
