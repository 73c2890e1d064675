// Place names for H3 cells, from the public city model (GET /api/v1/city): the district a cell's centre
// lies in, and the nearest named metro station, venue or shopping area. Pure: no DOM, no map.

import { cellToLatLng, getHexagonEdgeLengthAvg, getResolution, UNITS } from 'h3-js';

export const EARTH_RADIUS_M = 6371008.8;
// A place names a cell when it lies within this many edge lengths of the cell's centre (about the
// cell's own radius), so a res-6 cell may be named after a station 3 km away but a res-8 one may not.
export const NEAR_EDGES = 1;
export const OUTSIDE_DISTRICTS = 'outside the districts';

/** Is [lng, lat] inside `ring` (a list of [lng, lat], closed or not)? Even-odd ray casting. */
export function pointInRing(ring, lng, lat) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > lat !== yj > lat && lng < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** The first district whose polygon holds the point, or null. */
export function districtAt(districts, lng, lat) {
  return (districts ?? []).find((d) => pointInRing(d.polygon, lng, lat)) ?? null;
}

/** Great-circle distance in metres (haversine). */
export function distanceM(lat1, lng1, lat2, lng2) {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLng = (lng2 - lng1) * rad;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
}

const stationName = (name) => (/station/i.test(name) ? name : `${name} station`);

/**
 * Every named place of the city a cell may be called after: metro stations (an interchange once),
 * venues and merchant clusters. Bus stops are left out: their names are route numbers.
 */
export function namedPlaces(city) {
  const seen = new Set();
  const out = [];
  const add = (name, lat, lng, kind) => {
    if (seen.has(name)) return;
    seen.add(name);
    out.push({ name, lat, lng, kind });
  };
  for (const line of city?.metro_lines ?? []) for (const s of line.stations) add(stationName(s.name), s.lat, s.lng, 'station');
  for (const v of city?.venues ?? []) add(v.name, v.lat, v.lng, v.kind);
  for (const m of city?.merchant_clusters ?? []) add(m.name, m.lat, m.lng, 'shopping');
  return out;
}

/** The place nearest to (lat, lng) within `maxM` metres, with its distance; null when none is. */
export function nearestPlace(places, lat, lng, maxM) {
  let best = null;
  for (const p of places) {
    const d = distanceM(lat, lng, p.lat, p.lng);
    if (d <= maxM && (best === null || d < best.distanceM)) best = { ...p, distanceM: d };
  }
  return best;
}

/** "Futian · near Gangxia station", "Futian", "near Shenzhen Bay Sports Centre", or "outside the districts". */
export function placeLabel({ district, near }) {
  if (district && near) return `${district} · near ${near}`;
  if (district) return district;
  if (near) return `near ${near}`;
  return OUTSIDE_DISTRICTS;
}

/** {district, near, label} for a point, `maxM` being how far a named place may be. */
export function placeAt(city, places, lat, lng, maxM) {
  const district = districtAt(city?.districts, lng, lat)?.name ?? null;
  const near = nearestPlace(places, lat, lng, maxM)?.name ?? null;
  return { district, near, label: placeLabel({ district, near }) };
}

/**
 * A namer for cells of `city`: `place(hex)` -> {district, near, label}, cached per cell.
 * `district(hex)` is the district name, or "outside the districts".
 */
export function makePlaces(city) {
  const places = namedPlaces(city);
  const cache = new Map();
  const place = (hex) => {
    if (!cache.has(hex)) {
      const [lat, lng] = cellToLatLng(hex);
      const maxM = NEAR_EDGES * getHexagonEdgeLengthAvg(getResolution(hex), UNITS.m);
      cache.set(hex, placeAt(city, places, lat, lng, maxM));
    }
    return cache.get(hex);
  };
  return { place, district: (hex) => place(hex).district ?? OUTSIDE_DISTRICTS };
}
