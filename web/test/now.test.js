// The provisional "now" layer's pure rules (src/now.js).
import { describe, expect, it } from 'vitest';
import { localClock } from '../src/format.js';
import {
  FINAL_LABEL, freshnessText, interval90, mergeNow, nowApplies, paneKey, PROVISIONAL_LABEL, provisionalCell, provisionalText, usableNow,
} from '../src/now.js';
import { A, B, C, FRAME, NOW, W } from './page-fixtures.js';

const LIVE = { layer: 'population', breakdown: null, category: null, res: 7, scrubIndex: null };
const FINAL_ROWS = [{ hex: A, value: 40, suppressed: false }, { hex: B, value: null, suppressed: true }];

describe('which now message is drawn', () => {
  it('only over the live total of people present', () => {
    expect(nowApplies(LIVE)).toBe(true);
    expect(nowApplies({ ...LIVE, layer: 'transit' })).toBe(false);
    expect(nowApplies({ ...LIVE, breakdown: 'origin' })).toBe(false); // a now message has no breakdown
    expect(nowApplies({ ...LIVE, scrubIndex: 3 })).toBe(false); // paused on a past window
    expect(nowApplies({ ...LIVE, showHexes: false })).toBe(false);
  });

  it('only at the view\'s and the final frame\'s resolution, and only when newer than the final window', () => {
    expect(usableNow(NOW, FRAME, LIVE)).toBe(NOW);
    expect(usableNow(NOW, null, LIVE)).toBe(NOW); // before the first final frame
    expect(usableNow(null, FRAME, LIVE)).toBeNull();
    expect(usableNow(NOW, FRAME, { ...LIVE, res: 8 })).toBeNull(); // the map has zoomed: old resolution
    expect(usableNow(NOW, { ...FRAME, res: 8 }, LIVE)).toBeNull(); // the frame of the old resolution is still shown
    expect(usableNow(NOW, FRAME, { ...LIVE, layer: 'transit' })).toBeNull();
    // a final frame of a later window than the kept provisional values: the final frame is the freshest
    expect(usableNow(NOW, { ...FRAME, window_start_ms: W + 60_000 }, LIVE)).toBeNull();
    const atEnd = { ...NOW, tick_ms: W + 60_000 }; // the final window's last tick
    expect(usableNow(atEnd, FRAME, LIVE)).toBe(atEnd);
    expect(usableNow({ ...atEnd, tick_ms: W + 58_000 }, FRAME, LIVE)).toBeNull();
  });

  it('reads a cell\'s provisional value and noise; null is no value', () => {
    expect(provisionalCell(NOW, A)).toEqual({ value: 1234, sd: 37.6 });
    expect(provisionalCell(NOW, B)).toBeNull();
    expect(provisionalCell(NOW, 'elsewhere')).toBeNull();
    expect(provisionalCell(null, A)).toBeNull();
    expect(provisionalCell({ cells: { [A]: { 'population.persons': 5 } } }, A)).toEqual({ value: 5, sd: null });
  });
});

describe('merging provisional values with the final frame', () => {
  it('replaces a final value by the provisional one, keeps the final row under a null, adds now-only cells', () => {
    expect(mergeNow(FINAL_ROWS, NOW)).toEqual([
      { hex: A, value: 1234, suppressed: false, provisional: true, sd: 37.6 },
      { hex: B, value: null, suppressed: true }, // under the threshold now: the final (hidden) cell stays
      { hex: C, value: 56, suppressed: false, provisional: true, sd: 37.6 },
    ]);
  });

  it('without a now message draws the final rows as they are', () => {
    expect(mergeNow(FINAL_ROWS, null)).toBe(FINAL_ROWS);
    expect(mergeNow([], NOW).map((r) => r.hex)).toEqual([A, C]);
  });

  it('keeps the final rows\' order, then the provisional-only cells', () => {
    const rows = [{ hex: 'x', value: 3, suppressed: false }, ...FINAL_ROWS];
    expect(mergeNow(rows, NOW).map((r) => [r.hex, Boolean(r.provisional)])).toEqual([['x', false], [A, true], [B, false], [C, true]]);
  });
});

describe('a provisional value in words', () => {
  it('gives the 90% interval, 1.645 noise sd either side', () => {
    expect(interval90(1234, 37.6)[0]).toBeCloseTo(1172.148);
    expect(interval90(1234, 37.6)[1]).toBeCloseTo(1295.852);
    expect(interval90(20, 37.6)[0]).toBe(0); // never fewer than nobody
    expect(provisionalText(1234, 37.6)).toBe('≈ 1,234 people (provisional; 90% interval 1,172–1,296)');
    expect(provisionalText(1234, null)).toBe('≈ 1,234 people (provisional)');
  });

  it('says how fresh the provisional values are, to the second, in the city\'s time', () => {
    expect(localClock(W + 86_000, 8)).toBe('11:04:26');
    expect(freshnessText(NOW, 8)).toBe('provisional · as of 11:04:26');
    expect(freshnessText(null, 8)).toBe('');
  });
});

describe('the legend\'s key of provisional and final cells', () => {
  it('is absent before any now message, both when drawn, and says why none is drawn', () => {
    expect(paneKey({ hasNow: false, drawn: false, state: LIVE })).toBeNull();
    expect(paneKey({ hasNow: true, drawn: true, state: LIVE })).toEqual({
      items: [{ kind: 'provisional', label: PROVISIONAL_LABEL }, { kind: 'final', label: FINAL_LABEL }], note: '',
    });
    expect(PROVISIONAL_LABEL).toBe('provisional (updates every 2 s, noisy)');
    const why = (state) => paneKey({ hasNow: true, drawn: false, state });
    expect(why({ ...LIVE, breakdown: 'origin' })).toEqual({ items: [{ kind: 'final', label: FINAL_LABEL }], note: 'provisional values have no breakdown: final values only' });
    expect(why({ ...LIVE, layer: 'transit' }).note).toBe('provisional values are only for people present');
    expect(why({ ...LIVE, scrubIndex: 0 }).note).toBe('paused: final values only');
    expect(why(LIVE).note).toBe(''); // e.g. the map has just zoomed to another resolution
  });
});
