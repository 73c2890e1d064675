// The hatching that marks provisional cells: diagonal stripes clipped to each hexagon, drawn by a
// deck.gl PathLayer over the filled cells (plain lines: they render under software GL, no texture or
// shader extension). Stripes lie on one grid for the whole map, so neighbouring cells' stripes join up.
// Pure geometry, plus memos so that an unchanged set of cells keeps the very same arrays (deck.gl then
// uploads nothing).

import { cellToBoundary, getHexagonEdgeLengthAvg, getResolution, UNITS } from 'h3-js';

export const STRIPES_PER_EDGE = 2; // stripes this far apart: half a hexagon edge, so 3-4 per cell
export const KM_PER_DEGREE = 111.32;
export const HATCH_KEPT = 20_000; // cells whose stripes are kept (a city has a few thousand per resolution)

/**
 * The stripes of `hex`: [[lng, lat], [lng, lat]] segments along u + v = c, u = lng·cos(lat) and v = lat
 * (45° on the map), c on multiples of the resolution's spacing. The cosine is that of the whole degree
 * of latitude, so that neighbours use the same grid.
 */
export function hatchSegments(hex) {
  const ring = cellToBoundary(hex).map(([lat, lng]) => [lng, lat]);
  const k = Math.cos((Math.round(ring[0][1]) * Math.PI) / 180);
  const spacing = getHexagonEdgeLengthAvg(getResolution(hex), UNITS.km) / KM_PER_DEGREE / STRIPES_PER_EDGE;
  const step = spacing * Math.SQRT2; // along u + v, stripes `spacing` apart across
  const s = ring.map(([lng, lat]) => lng * k + lat);
  const out = [];
  for (let n = Math.ceil(Math.min(...s) / step); n * step <= Math.max(...s); n += 1) {
    const c = n * step;
    const hits = [];
    ring.forEach((p, i) => {
      const j = (i + 1) % ring.length;
      // half-open, so a vertex on the line counts once: a convex ring is crossed exactly twice
      if (s[i] <= c !== s[j] <= c) {
        const t = (c - s[i]) / (s[j] - s[i]);
        hits.push([p[0] + t * (ring[j][0] - p[0]), p[1] + t * (ring[j][1] - p[1])]);
      }
    });
    if (hits.length >= 2) out.push([hits[0], hits[1]]);
  }
  return out;
}

/**
 * rows -> the stripes of the provisional ones ([{hex, path}]), remembered: the same set of provisional
 * cells gives back the same array, and each cell's stripes are computed once.
 */
export function makeHatch(segmentsOf = hatchSegments) {
  const cells = new Map();
  let last = { id: null, stripes: [] };
  return (rows) => {
    const hexes = rows.filter((r) => r.provisional).map((r) => r.hex);
    const id = hexes.join(',');
    if (id === last.id) return last.stripes;
    if (cells.size > HATCH_KEPT) cells.clear();
    const stripes = hexes.flatMap((hex) => {
      if (!cells.has(hex)) cells.set(hex, segmentsOf(hex).map((path) => ({ hex, path })));
      return cells.get(hex);
    });
    last = { id, stripes };
    return stripes;
  };
}

/**
 * rows -> {rows, version}, keeping the previous rows array while the cells drawn are the same ones in
 * the same order: their values are updated in place and `version` goes up, so deck.gl recomputes the
 * colours (updateTriggers) without rebuilding the hexagons' geometry. A different set of cells gives
 * the new array (and a new version).
 */
export function makeStableRows() {
  let kept = [];
  let version = 0;
  const same = (a, b) => Object.keys(a).length === Object.keys(b).length && Object.keys(a).every((k) => a[k] === b[k]);
  return (rows) => {
    if (rows.length !== kept.length || rows.some((r, i) => r.hex !== kept[i].hex)) {
      kept = rows;
      version += 1;
      return { rows, version };
    }
    let changed = false;
    rows.forEach((r, i) => {
      const row = kept[i];
      if (row === r || same(row, r)) return;
      for (const k of Object.keys(row)) if (!(k in r)) delete row[k];
      Object.assign(row, r);
      changed = true;
    });
    if (changed) version += 1;
    return { rows: kept, version };
  };
}
