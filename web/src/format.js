// Words and numbers as an operator reads them: numbers, local times, the window a layer covers,
// breakdown parts, why a value is hidden. Pure (no DOM); the panels, headline, legend and tooltip share them.

export const DIMENSION_LABELS = { gender: 'Gender', age_band: 'Age', origin: 'Home region', category: 'Spent on', mode: 'Mode', line: 'Line' };
export const CATEGORY_LABELS = { F: 'women', M: 'men', 'hk-mo-tw': 'HK, Macau, Taiwan', 'bus-local': 'local buses' };

const fmt = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
export const HIDDEN = 'hidden';
export const formatNumber = (v) => (v === null ? HIDDEN : fmt.format(v));

/** "11:03" and "2026-12-05" in the city's local time (the city file's utc_offset_h), for labels. */
export function localTime(ms, utcOffsetH = 0) {
  const iso = new Date(ms + utcOffsetH * 3_600_000).toISOString();
  return { date: iso.slice(0, 10), time: iso.slice(11, 16) };
}

/** "11:03:26" in the city's local time: the clock of a provisional value (a 2 s tick). */
export const localClock = (ms, utcOffsetH = 0) => new Date(ms + utcOffsetH * 3_600_000).toISOString().slice(11, 19);

/** The layer of a stat key ("payments.amount_cny|category=food" -> "payments"). */
export const layerOf = (key) => key.split('|')[0].split('.')[0];

/**
 * The part of a layer's window `span` the pipeline has data for: {from, to, partial}. A window that
 * began before `dataSinceMs` (where a fresh run's data begins, /api/v1/config) covers only its end.
 */
export function coveredSpan(span, dataSinceMs = null) {
  if (!span) return null;
  const partial = typeof dataSinceMs === 'number' && dataSinceMs > span[0] && dataSinceMs < span[1];
  return { from: partial ? dataSinceMs : span[0], to: span[1], partial };
}

/**
 * "08:00–08:15": the window a layer's values cover (frame.spans, [start_ms, end_ms]) in the city's
 * local time; '' when the frame does not say. Spend, transit and flows may cover a longer window than
 * people present, so every panel says which one it shows ("08:11–08:15, since the start" when only
 * its end is covered).
 */
export function spanLabel(frame, layer, utcOffsetH = 0, dataSinceMs = null) {
  const covered = coveredSpan(frame?.spans?.[layer], dataSinceMs);
  if (!covered) return '';
  const text = `${localTime(covered.from, utcOffsetH).time}–${localTime(covered.to, utcOffsetH).time}`;
  return covered.partial ? `${text}, since the start` : text;
}

/**
 * For a layer over a longer window that no released window covers yet (the first quarter hour after a
 * start): "first 15-min window ends 08:15", so an empty figure says when it fills; '' otherwise.
 * The end is the next multiple of the layer's window after the shown frame's end (windows are aligned).
 */
export function pendingSpanText(frame, layer, layerWindowsS, utcOffsetH = 0) {
  const spanS = layerWindowsS?.[layer];
  if (!frame || frame.spans?.[layer] || !spanS || spanS === frame.window_s) return '';
  const spanMs = spanS * 1000;
  const endMs = frame.window_start_ms + frame.window_s * 1000;
  const closesMs = Math.ceil(endMs / spanMs) * spanMs;
  const length = spanS % 60 ? `${spanS} s` : `${spanS / 60}-min`;
  return `first ${length} window ends ${localTime(closesMs, utcOffsetH).time}`;
}

/** A title with the window of its layer: "Top flows (people) · 08:00–08:15". */
export const withSpan = (title, frame, layer, utcOffsetH = 0, dataSinceMs = null) => {
  const label = spanLabel(frame, layer, utcOffsetH, dataSinceMs);
  return label ? `${title} · ${label}` : title;
};

/**
 * Why a value may be hidden, in words. Frames say only that a value is suppressed, never which rule
 * did it: saying "hidden only to protect a neighbour" would tell that the value itself is k or more.
 */
export function suppressionReason(key, k, dominanceShare = 0.5) {
  const reasons = [`fewer than ${k} people`, 'hidden so that a neighbouring hidden value cannot be worked out'];
  if (key?.startsWith('payments.amount')) reasons.push(`one payer makes up more than ${Math.round(dominanceShare * 100)}% of it`);
  return `${reasons.slice(0, -1).join(', ')} or ${reasons.at(-1)}`;
}

/** "women", "25-34", "Line 1 (Luobao)": a breakdown category as an operator reads it. */
export function categoryLabel(dimension, category, lineNames = {}) {
  if (dimension === 'line') return lineNames[category] ?? CATEGORY_LABELS[category] ?? category;
  return CATEGORY_LABELS[category] ?? category;
}

/** The statistic a key is a part of, in words: '' for a total, "gender: women" for a part. */
export function partLabel(key) {
  const [, part] = key.split('|');
  if (!part) return '';
  const [dimension, category] = part.split('=');
  return `${(DIMENSION_LABELS[dimension] ?? dimension).toLowerCase()}: ${categoryLabel(dimension, category)}`;
}
