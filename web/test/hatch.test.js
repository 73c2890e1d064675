// The hatching of provisional cells and the rows kept in place between updates (src/hatch.js).
import { gridDisk, latLngToCell } from 'h3-js';
import { describe, expect, it, vi } from 'vitest';
import { hatchSegments, makeHatch, makeStableRows } from '../src/hatch.js';
import { A, B } from './page-fixtures.js';

const diagonal = ([[x0, y0], [x1, y1]], k) => (x0 * k + y0) - (x1 * k + y1);

describe('hatchSegments', () => {
  it('cuts parallel 45° stripes across the cell, each inside it', () => {
    const stripes = hatchSegments(A);
    expect(stripes.length).toBeGreaterThanOrEqual(3);
    expect(stripes.length).toBeLessThanOrEqual(6);
    const k = Math.cos((22 * Math.PI) / 180); // the cell lies at about 22.5° N
    for (const s of stripes) {
      expect(Math.abs(diagonal(s, k))).toBeLessThan(1e-9); // along u + v = c
      const [[x0, y0], [x1, y1]] = s;
      expect(latLngToCell((y0 + y1) / 2, (x0 + x1) / 2, 7)).toBe(A);
      expect(Math.hypot(x1 - x0, y1 - y0)).toBeGreaterThan(0);
    }
  });

  it('lays the stripes of neighbouring cells on one grid, so they join across the shared edge', () => {
    const [neighbour] = gridDisk(A, 1).filter((h) => h !== A);
    const ends = (hex) => hatchSegments(hex).flat();
    const joined = ends(A).filter(([x, y]) => ends(neighbour).some(([u, v]) => Math.hypot(x - u, y - v) < 1e-9));
    expect(joined.length).toBeGreaterThanOrEqual(1);
  });

  it('draws finer cells with stripes as many per cell', () => {
    const fine = latLngToCell(22.5, 113.5, 8);
    expect(Math.abs(hatchSegments(fine).length - hatchSegments(A).length)).toBeLessThanOrEqual(2);
  });
});

describe('makeHatch', () => {
  it('gives the stripes of the provisional rows only, the same array while those cells stay', () => {
    const segmentsOf = vi.fn((hex) => [[[0, 0], [1, 1]], [[hex.length, 0], [0, 1]]]);
    const hatch = makeHatch(segmentsOf);
    const rows = [{ hex: A, value: 1, provisional: true }, { hex: B, value: 2, suppressed: false }];
    const first = hatch(rows);
    expect(first.map((s) => s.hex)).toEqual([A, A]);
    expect(first[0].path).toEqual([[0, 0], [1, 1]]);
    expect(hatch([{ ...rows[0], value: 9 }, rows[1]])).toBe(first); // new values, same cells: nothing to upload
    const both = hatch(rows.map((r) => ({ ...r, provisional: true })));
    expect(both.map((s) => s.hex)).toEqual([A, A, B, B]);
    expect(segmentsOf).toHaveBeenCalledTimes(2); // each cell's stripes computed once
    expect(hatch([])).toEqual([]);
  });
});

describe('makeStableRows', () => {
  it('updates the kept rows in place while the same cells are drawn, with a new version', () => {
    const stable = makeStableRows();
    const first = stable([{ hex: A, value: 40, suppressed: false }, { hex: B, value: null, suppressed: true }]);
    const kept = first.rows;
    const next = stable([{ hex: A, value: 1234, suppressed: false, provisional: true, sd: 37.6 }, { hex: B, value: null, suppressed: true }]);
    expect(next.rows).toBe(kept);
    expect(next.version).toBe(first.version + 1);
    expect(kept[0]).toEqual({ hex: A, value: 1234, suppressed: false, provisional: true, sd: 37.6 });
    // back to final: the provisional fields go
    const back = stable([{ hex: A, value: 41, suppressed: false }, { hex: B, value: null, suppressed: true }]);
    expect(back.rows).toBe(kept);
    expect(kept[0]).toEqual({ hex: A, value: 41, suppressed: false });
    expect(Object.keys(kept[0])).toEqual(['hex', 'value', 'suppressed']);
    // nothing changed: the same version, so deck.gl recomputes nothing
    expect(stable([{ hex: A, value: 41, suppressed: false }, { hex: B, value: null, suppressed: true }]).version).toBe(back.version);
  });

  it('takes the new rows when the cells differ', () => {
    const stable = makeStableRows();
    const first = stable([{ hex: A, value: 1, suppressed: false }]);
    const rows = [{ hex: B, value: 2, suppressed: false }];
    const next = stable(rows);
    expect(next.rows).toBe(rows);
    expect(next.version).toBeGreaterThan(first.version);
    const reordered = [{ hex: A, value: 1, suppressed: false }, { hex: B, value: 2, suppressed: false }];
    stable(reordered);
    expect(stable([...reordered].reverse()).rows).not.toBe(reordered);
  });
});
