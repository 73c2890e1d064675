import { latLngToCell } from 'h3-js';
import { describe, expect, it } from 'vitest';
import {
  OUTSIDE_DISTRICTS, distanceM, districtAt, makePlaces, namedPlaces, nearestPlace, placeLabel, pointInRing,
} from '../src/places.js';

const SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]];

function makeCity(overrides = {}) {
  return {
    name: 'Tiny',
    districts: [
      { id: 'w', name: 'West', polygon: [[113.9, 22.5], [114.0, 22.5], [114.0, 22.6], [113.9, 22.6]] },
      { id: 'e', name: 'East', polygon: [[114.0, 22.5], [114.1, 22.5], [114.1, 22.6], [114.0, 22.6]] },
    ],
    metro_lines: [
      { id: 'L1', name: 'One', color: '#f00', stations: [{ id: 'a', name: 'Alpha', lat: 22.55, lng: 113.95 }, { id: 'x', name: 'Cross', lat: 22.55, lng: 114.05 }] },
      { id: 'L2', name: 'Two', color: '#0f0', stations: [{ id: 'x2', name: 'Cross', lat: 22.5501, lng: 114.0501 }] },
    ],
    bus_lines: [{ id: 'B1', name: 'Bus 1', color: '#999', stations: [{ id: 'b', name: 'Bus 1 stop 1', lat: 22.55, lng: 113.95 }] }],
    venues: [{ id: 'v', name: 'Big Railway Station', kind: 'railway_station', lat: 22.58, lng: 114.08 }],
    merchant_clusters: [{ id: 'm', name: 'Mall', lat: 22.52, lng: 113.92 }],
    ...overrides,
  };
}

describe('pointInRing', () => {
  it.each([
    [0.5, 0.5, true], [1.5, 0.5, false], [-0.1, 0.5, false], [0.5, 1.2, false], [0.99, 0.01, true],
  ])('(%d, %d) inside the unit square: %s', (lng, lat, inside) => {
    expect(pointInRing(SQUARE, lng, lat)).toBe(inside);
  });
  it('handles a concave ring and an open ring', () => {
    const u = [[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3]]; // a U, not closed
    expect(pointInRing(u, 0.5, 2)).toBe(true);
    expect(pointInRing(u, 1.5, 2)).toBe(false); // in the notch
    expect(pointInRing(u, 2.5, 2)).toBe(true);
  });
});

describe('districts and distances', () => {
  it('finds the district holding a point, or none', () => {
    const city = makeCity();
    expect(districtAt(city.districts, 113.95, 22.55).name).toBe('West');
    expect(districtAt(city.districts, 114.05, 22.55).name).toBe('East');
    expect(districtAt(city.districts, 115, 22.55)).toBeNull();
    expect(districtAt(undefined, 0, 0)).toBeNull();
  });
  it('measures great-circle distance in metres', () => {
    expect(distanceM(22.5, 114, 22.5, 114)).toBe(0);
    // one degree of latitude is about 111.2 km
    expect(distanceM(22, 114, 23, 114)).toBeCloseTo(111_195, -2);
  });
});

describe('named places', () => {
  it('lists metro stations once (interchanges), venues and clusters, never bus stops', () => {
    const names = namedPlaces(makeCity()).map((p) => p.name);
    expect(names).toEqual(['Alpha station', 'Cross station', 'Big Railway Station', 'Mall']);
  });
  it('picks the nearest place within the distance, else none', () => {
    const places = namedPlaces(makeCity());
    expect(nearestPlace(places, 22.551, 113.951, 500).name).toBe('Alpha station');
    expect(nearestPlace(places, 22.521, 113.921, 500).name).toBe('Mall');
    expect(nearestPlace(places, 22.7, 114.3, 500)).toBeNull();
  });
  it.each([
    [{ district: 'West', near: 'Alpha station' }, 'West · near Alpha station'],
    [{ district: 'West', near: null }, 'West'],
    [{ district: null, near: 'Mall' }, 'near Mall'],
    [{ district: null, near: null }, OUTSIDE_DISTRICTS],
  ])('labels %j as %s', (place, label) => expect(placeLabel(place)).toBe(label));
});

describe('makePlaces', () => {
  it('names an H3 cell by its centre: district and nearest place within the cell size', () => {
    const places = makePlaces(makeCity());
    const fine = latLngToCell(22.5502, 113.9503, 8); // res 8: about 0.5 km edges
    expect(places.place(fine)).toEqual({ district: 'West', near: 'Alpha station', label: 'West · near Alpha station' });
    const far = latLngToCell(22.595, 113.905, 8); // a corner of West, kilometres from any place
    expect(places.place(far).label).toBe('West');
    expect(places.district(latLngToCell(22.55, 114.05, 8))).toBe('East');
    expect(places.district(latLngToCell(23.5, 115, 8))).toBe(OUTSIDE_DISTRICTS);
  });
});
