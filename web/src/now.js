// The provisional "now" layer (issue 15): people present every ~2 s, noisy, drawn over the last final
// frame. Pure: which `now` message applies to what the map shows, the rows to draw (provisional values
// merged with the final frame's), a provisional value's words and interval, and the legend's key.

import { formatNumber, localClock } from './format.js';

export const NOW_KEY = 'population.persons'; // the only statistic a `now` message holds
export const Z90 = 1.645; // a 90% interval is the value ± 1.645 noise sd
export const NOW_TICK_S = 2; // the gateway sends a `now` message per tick of this length
export const PROVISIONAL_LABEL = `provisional (updates every ${NOW_TICK_S} s, noisy)`;
export const FINAL_LABEL = 'final (window closed)';

/**
 * Whether provisional values may be drawn for `state` (the Screen's): the live view (not a paused
 * window) of the total of people present, hexagons on. A `now` message holds no breakdown, so with a
 * breakdown chosen the map shows final values only.
 */
export function nowApplies(state) {
  return state.layer === 'population' && !state.breakdown && (state.scrubIndex ?? null) === null && state.showHexes !== false;
}

/** The end of a final frame's window (ms), or -Infinity without a frame. */
const windowEnd = (frame) => (frame ? frame.window_start_ms + frame.window_s * 1000 : -Infinity);

/**
 * The `now` message to draw over `frame` (the final frame shown) for `state`, or null: none applies
 * (another layer, a breakdown, paused), it is of another resolution than the view or the frame (the
 * map has just zoomed), or it is not newer than the frame's window (an old one kept after the feed of
 * provisional values stopped: the final frame is then the freshest).
 */
export function usableNow(now, frame, state) {
  if (!now || !nowApplies(state)) return null;
  if (now.res !== state.res || (frame && frame.res !== now.res)) return null;
  if (now.tick_ms < windowEnd(frame)) return null;
  return now;
}

/** {value, sd} of `hex` in a `now` message, or null where it holds no value (null: under the threshold). */
export function provisionalCell(now, hex) {
  const value = now?.cells?.[hex]?.[NOW_KEY];
  if (typeof value !== 'number') return null;
  const sd = now.noise_sd?.[hex];
  return { value, sd: typeof sd === 'number' ? sd : null };
}

/**
 * The rows to draw: the final frame's `rows` (layers.hexRows), each replaced by the provisional value
 * of its cell where `now` holds one ({hex, value, suppressed: false, provisional: true, sd}), then the
 * cells only `now` has a value for. A cell whose provisional value is null (under the threshold) keeps
 * its final row: nothing newer is shown there. Order: the final rows', then `now`'s.
 */
export function mergeNow(rows, now) {
  if (!now) return rows;
  const provisional = (hex, p) => ({ hex, value: p.value, suppressed: false, provisional: true, sd: p.sd });
  const seen = new Set();
  const out = rows.map((r) => {
    seen.add(r.hex);
    const p = provisionalCell(now, r.hex);
    return p ? provisional(r.hex, p) : r;
  });
  for (const hex of Object.keys(now.cells ?? {})) {
    const p = seen.has(hex) ? null : provisionalCell(now, hex);
    if (p) out.push(provisional(hex, p));
  }
  return out;
}

/** [low, high] of the 90% interval of `value` with noise sd `sd` (people: never below 0). */
export function interval90(value, sd) {
  const half = Z90 * sd;
  return [Math.max(0, value - half), value + half];
}

/** "≈ 1,234 people (provisional; 90% interval 1,172–1,296)"; without a noise sd, no interval. */
export function provisionalText(value, sd) {
  if (typeof sd !== 'number') return `≈ ${formatNumber(value)} people (provisional)`;
  const [low, high] = interval90(value, sd);
  return `≈ ${formatNumber(value)} people (provisional; 90% interval ${formatNumber(low)}–${formatNumber(high)})`;
}

/** "provisional · as of 12:04:26": the event time the drawn provisional values hold, in the city's time. */
export function freshnessText(now, utcOffsetH = 0) {
  return now ? `provisional · as of ${localClock(now.tick_ms, utcOffsetH)}` : '';
}

/**
 * The legend's key of what a cell shows, or null before any `now` message (final frames only, as
 * before the now layer): {items: [{kind, label}], note}. `hasNow`: a `now` message has come; `drawn`:
 * provisional values are drawn; `state` the Screen's.
 */
export function paneKey({ hasNow, drawn, state }) {
  if (!hasNow) return null;
  const final = { kind: 'final', label: FINAL_LABEL };
  if (drawn) return { items: [{ kind: 'provisional', label: PROVISIONAL_LABEL }, final], note: '' };
  let note = '';
  if ((state.scrubIndex ?? null) !== null) note = 'paused: final values only';
  else if (state.layer !== 'population') note = 'provisional values are only for people present';
  else if (state.breakdown) note = 'provisional values have no breakdown: final values only';
  return { items: [final], note };
}
