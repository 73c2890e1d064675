// @vitest-environment happy-dom
import { beforeEach, describe, expect, it } from 'vitest';
import {
  categoryLabel, formatNumber, layerOf, localTime, partLabel, pendingSpanText, spanLabel, suppressionReason, withSpan,
} from '../src/format.js';
import { HEADLINES, headlineModel, renderHeadline, sparkline } from '../src/headline.js';
import {
  barRows, breakdownTotals, busiestCells, busiestRows, districtFlows, flowLabel, flowRows, hiddenNote, manifestRows,
  privacyModel, renderPanels, topFlows, windowsLine,
} from '../src/panels.js';

const DISTRICT = { a: 'Futian', b: 'Nanshan', c: 'Futian', d: 'Luohu' };
const PLACES = {
  place: (hex) => ({ label: `${DISTRICT[hex] ?? 'outside the districts'} · near ${hex.toUpperCase()} station` }),
  district: (hex) => DISTRICT[hex] ?? 'outside the districts',
};
const MANIFEST = {
  version: 1, privacy_unit: 'person', min_persons: 12, k: 12, window_s: 60, resolutions: [8, 7, 6],
  dominance_share: 0.5, dp_enabled: false, mechanism: 'threshold', dp: null, rules: ['threshold: ...', 'flows: ...'],
};

function makeFrame(overrides = {}) {
  return {
    res: 6, window_start_ms: 120_000, window_s: 60,
    privacy: { min_persons: 12, dp_enabled: false, epsilon: 0, mechanism: 'threshold' },
    cells: {
      a: { k: 5, 'p|origin=east': 3, 'p|origin=north': null },
      b: { k: 9, 'p|origin=east': 4, 'p|origin=north': 12 },
      c: { k: null },
    },
    flows: [
      { origin: 'a', dest: 'b', kind: 'movement', persons: 1240 },
      { origin: 'c', dest: 'b', kind: 'movement', persons: 60 },
      { origin: 'a', dest: 'c', kind: 'transit', persons: 30 },
      { origin: 'b', dest: 'd', kind: 'movement', persons: null },
    ],
    ...overrides,
  };
}

function makeTotals(values, key = 'population.persons') {
  return values.map((v, i) => ({
    window_start_ms: 60_000 * (i + 1), window_s: 60,
    totals: v === undefined ? {} : { [key]: v, 'payments.amount_cny': 2 * (v ?? 0), 'transit.tap_in': 30 },
    suppressed_cells: { [key]: i },
  }));
}

describe('words', () => {
  it('formats numbers with separators and hidden values as hidden', () => {
    expect(formatNumber(1240)).toBe('1,240');
    expect(formatNumber(null)).toBe('hidden');
  });
  it('says why a value may be hidden, with k and, for amounts, the dominance rule', () => {
    expect(suppressionReason('population.persons', 10)).toBe(
      'fewer than 10 people or hidden so that a neighbouring hidden value cannot be worked out',
    );
    expect(suppressionReason('payments.amount_cny|category=food', 25, 0.6)).toBe(
      'fewer than 25 people, hidden so that a neighbouring hidden value cannot be worked out or one payer makes up more than 60% of it',
    );
  });
  it('names categories and parts as an operator reads them', () => {
    expect(categoryLabel('gender', 'F')).toBe('women');
    expect(categoryLabel('line', 'L1', { L1: 'Line 1 (Luobao)' })).toBe('Line 1 (Luobao)');
    expect(categoryLabel('age_band', '25-34')).toBe('25-34');
    expect(partLabel('population.persons')).toBe('');
    expect(partLabel('population.persons|origin=hk-mo-tw')).toBe('home region: HK, Macau, Taiwan');
  });
});

describe('headline figures', () => {
  it('takes the shown window, per minute for rates, and only statistics the gateway releases', () => {
    const windows = makeTotals([100, 120, 90]);
    windows[2].window_s = 30; // rates are per minute whatever the window
    const statistics = { population: { persons: [] }, payments: { amount_cny: [] }, transit: { tap_in: [] } };
    const models = headlineModel(windows, { statistics, shownWindowMs: 120_000 });
    expect(models.map((m) => m.key)).toEqual(['population.persons', 'payments.amount_cny', 'transit.tap_in']);
    const [people, spend, taps] = models;
    expect(people).toMatchObject({ label: 'People present', value: 120, text: '120', index: 1, hiddenCells: 1, windowStartMs: 120_000 });
    expect(spend.values).toEqual([200, 240, 360]);
    expect(taps.text).toBe('30');
  });
  it('shows the newest window when the shown one is not among them, and a new statistic when released', () => {
    const statistics = { population: { persons: [] }, active: { persons: [] } };
    const models = headlineModel(makeTotals([5, 7]), { statistics, shownWindowMs: 999 });
    expect(models.map((m) => m.label)).toEqual(['People present', 'People active']);
    expect(models[0].text).toBe('7');
    expect(models[1]).toMatchObject({ value: null, text: '–' });
  });
  it('says hidden, not 0, for a window where no cell released the statistic', () => {
    const windows = [
      { window_start_ms: 60_000, window_s: 60, totals: { 'transit.tap_in': 0 }, released_cells: { 'transit.tap_in': 0 }, suppressed_cells: { 'transit.tap_in': 4 } },
      { window_start_ms: 120_000, window_s: 60, totals: { 'transit.tap_in': 0 }, released_cells: { 'transit.tap_in': 2 }, suppressed_cells: {} },
    ];
    const statistics = { transit: { tap_in: [] } };
    expect(headlineModel(windows, { statistics, shownWindowMs: 60_000 })[0]).toMatchObject({ text: 'hidden', value: null, hiddenCells: 4 });
    expect(headlineModel(windows, { statistics })[0]).toMatchObject({ text: '0', values: [null, 0] });
  });
  it('divides a rate by the window its layer covers, and says which window', () => {
    // 15 minutes of spend (08:00-08:15 UTC) shown with a one-minute frame
    const spans = { payments: [28_800_000, 29_700_000], population: [29_640_000, 29_700_000] };
    const windows = [{ window_start_ms: 29_640_000, window_s: 60, totals: { 'payments.amount_cny': 1500 }, released_cells: { 'payments.amount_cny': 3 }, suppressed_cells: {}, spans }];
    const [spend] = headlineModel(windows, { statistics: { payments: { amount_cny: [] } } });
    expect(spend).toMatchObject({ value: 100, span: [28_800_000, 29_700_000] });
    document.body.innerHTML = '<section id="headline"></section>';
    renderHeadline(document, [spend], 6, 8);
    expect(document.querySelector('#headline .figure-label').textContent).toBe('Spend · 16:00–16:15');
  });
  it('counts a window that began before a fresh run as partial: its rate over the minutes since the start', () => {
    // 15 minutes of taps (08:00-08:15 UTC), the run started at 08:11: 400 taps in 4 minutes
    const spans = { transit: [28_800_000, 29_700_000], population: [29_640_000, 29_700_000] };
    const windows = [{ window_start_ms: 29_640_000, window_s: 60, totals: { 'transit.tap_in': 400 }, released_cells: { 'transit.tap_in': 3 }, suppressed_cells: {}, spans }];
    const statistics = { transit: { tap_in: [] } };
    const [taps] = headlineModel(windows, { statistics, dataSinceMs: 29_460_000 });
    expect(taps).toMatchObject({ value: 100, span: [29_460_000, 29_700_000], partial: true });
    document.body.innerHTML = '<section id="headline"></section>';
    renderHeadline(document, [taps], 6, 8);
    expect(document.querySelector('#headline .figure-label').textContent).toBe('Transit taps · 16:11–16:15');
    expect(document.querySelector('#headline .figure-unit').textContent).toBe('taps per minute · since the start');
    // a start before the window, or none known: the whole window
    for (const dataSinceMs of [28_000_000, null]) {
      expect(headlineModel(windows, { statistics, dataSinceMs })[0]).toMatchObject({ value: 400 / 15, partial: false });
    }
    expect(withSpan('Top flows (people)', { spans }, 'transit', 8, 29_460_000)).toBe('Top flows (people) · 16:11–16:15, since the start');
  });
  it('is empty-valued without windows', () => {
    expect(headlineModel([], {}).map((m) => m.text)).toEqual(HEADLINES.map(() => '–'));
  });
  it('draws a sparkline from 0 to the maximum, with gaps for missing windows and a mark', () => {
    const line = sparkline([0, 10, null, 5], 34, 24, 3);
    expect(line.segments).toEqual(['2,22 12,2', '32,12']);
    expect(line.mark).toEqual({ x: 32, y: 12 }); // a lone point after a gap shows as the mark
    expect(sparkline([0, 10, null, 5, 5], 42, 24).segments).toEqual(['2,22 11.5,2', '30.5,12 40,12']);
    expect(sparkline([1, null], 20, 10, 1).mark).toBeNull();
    expect(sparkline([4, 8], 20, 10, 1).mark).toEqual({ x: 18, y: 2 });
    expect(sparkline([0, 0], 20, 10).segments).toEqual(['2,8 18,8']);
  });
});

describe('busiest places and flows', () => {
  it('busiest cells skip suppressed and sort by value, named by place', () => {
    expect(busiestCells(makeFrame(), 'k')).toEqual([{ hex: 'b', value: 9 }, { hex: 'a', value: 5 }]);
    expect(busiestRows(makeFrame(), 'k', PLACES.place)).toEqual([['Nanshan · near B station', '9'], ['Futian · near A station', '5']]);
  });
  it('top flows skip suppressed', () => expect(topFlows(makeFrame()).map((f) => f.persons)).toEqual([1240, 60, 30]));
  it('adds released flows up by district pair and kind', () => {
    expect(districtFlows(makeFrame(), PLACES.district)).toEqual([
      { from: 'Futian', to: 'Nanshan', kind: 'movement', persons: 1300, arcs: 2 },
      { from: 'Futian', to: 'Futian', kind: 'transit', persons: 30, arcs: 1 },
    ]);
  });
  it('labels flows by district names', () => {
    expect(flowLabel({ from: 'Futian', to: 'Nanshan' })).toBe('Futian → Nanshan');
    expect(flowLabel({ from: 'Futian', to: 'Futian' })).toBe('within Futian');
    expect(flowRows(makeFrame(), PLACES.district)).toEqual([
      ['Futian → Nanshan', 'moved', '1,300'],
      ['within Futian', 'by metro or bus', '30'],
    ]);
  });
});

describe('breakdowns', () => {
  it('sum released parts and count suppressed ones', () => {
    const totals = breakdownTotals(makeFrame(), 'p|origin', ['east', 'north', 'international']);
    expect(totals).toEqual({
      east: { value: 7, releasedCells: 2, suppressedCells: 0 },
      north: { value: 12, releasedCells: 1, suppressedCells: 1 },
      international: { value: 0, releasedCells: 0, suppressedCells: 0 },
    });
    expect(barRows(totals, 'origin').map((r) => [r.label, r.text, r.share])).toEqual([['east', '7', 7 / 12], ['north', '12', 1], ['international', '0', 0]]);
    const nowhere = { food: { value: 0, releasedCells: 0, suppressedCells: 3 } };
    expect(barRows(nowhere, 'category')[0].text).toBe('hidden');
    expect(hiddenNote(totals, 3)).toBe('Counted where released only: a part is hidden in up to 1 of 3 areas.');
    expect(hiddenNote({ east: { value: 1, releasedCells: 1, suppressedCells: 0 } }, 3)).toBe('');
  });
});

describe('privacy', () => {
  it('says in plain words what every number covers, with k from the manifest', () => {
    const model = privacyModel(MANIFEST, makeFrame().privacy);
    expect(model.summary).toBe('Every number covers at least 12 people.');
    expect(model.lines).toEqual([
      'Violet cells have fewer, or are hidden so that a neighbouring hidden value cannot be worked out.',
      'Numbers count people per area and minute; nobody is identified.',
      'Spend is also hidden where one payer makes up more than 50% of it.',
      'No random noise is added to final numbers (differential privacy is off for them).',
    ]);
    expect(model.rules).toEqual(MANIFEST.rules);
  });
  it('says the provisional layer carries noise, with its budget per person-day, when the manifest has it', () => {
    const model = privacyModel({ ...MANIFEST, now_layer: { tick_s: 2, epsilon_per_person_day: 2.9999 } }, null);
    expect(model.lines.at(-1)).toBe(
      'Provisional people present (hatched, every 2 s) carry random noise: differential privacy, at most ε 3.0 per person per day for everything they show.',
    );
  });
  it('mentions noise and the manifest warning under differential privacy', () => {
    const model = privacyModel({ ...MANIFEST, dp_enabled: true, mechanism: 'laplace', warning: 'epsilon per day is 1440' }, null);
    expect(model.lines.slice(-2)).toEqual(['Random noise is added to every number (differential privacy, laplace).', 'epsilon per day is 1440']);
  });
  it('says which numbers carry noise when only the person counts do (stock noise)', () => {
    const model = privacyModel({ ...MANIFEST, noised_layers: ['population', 'active'], dp: { mechanism: 'laplace' } }, null);
    expect(model.lines.at(-1)).toBe(
      'Random noise (laplace) is added to people present and active persons. A count keeps the same noise while it holds, so a hidden number cannot be worked out by comparing or averaging minutes. Spend, transit and flows are exact.',
    );
  });
  it('falls back to the frame\'s k, and admits when there is none', () => {
    expect(privacyModel(null, { min_persons: 20 }).summary).toBe('Every number covers at least 20 people.');
    expect(privacyModel(null, null).summary).toBe('The privacy rules could not be loaded.');
  });
  it('details flatten the manifest and add this window\'s spend', () => {
    const rows = manifestRows({ min_persons: 10, resolutions: [8, 7], dp: null, noise: { delta: 1e-6 }, rules: ['x'] }, { mechanism: 'laplace', epsilon: 0.5 });
    expect(rows).toEqual([
      ['min persons', '10'], ['resolutions', '8, 7'], ['dp', '–'], ['noise · delta', '0.000001'],
      ['this window: mechanism', 'laplace'], ['this window: epsilon spent', '0.5'],
    ]);
  });
});

describe('rendered panels', () => {
  beforeEach(() => {
    document.body.innerHTML = ['headline', 'panel-privacy', 'panel-busiest', 'panel-flows', 'panel-origins', 'panel-spend'].map((id) => `<section id="${id}"></section>`).join('');
  });
  const text = (id) => document.getElementById(id).textContent;

  it('write place names, flows, plain privacy words and folded manifest details', () => {
    const config = { breakdowns: { origin: ['east', 'north'], category: ['food'] } };
    const origin = { cells: { a: { 'population.persons': 20, 'population.persons|origin=east': 20, 'population.persons|origin=north': null }, b: { 'population.persons': 12, 'population.persons|origin=east': null, 'population.persons|origin=north': 12 } } };
    renderPanels(document, makeFrame(), { key: 'k', metric: { label: 'People present' }, config, manifest: MANIFEST, places: PLACES, breakdownFrames: { origin } });
    expect(text('panel-busiest')).toContain('Busiest places · People present');
    expect(text('panel-busiest')).toContain('Nanshan · near B station9');
    expect(text('panel-flows')).toContain('Futian → Nanshanmoved1,300');
    expect(text('panel-origins')).toContain('east20north12');
    expect(text('panel-origins')).toContain('hidden in up to 1 of 2 areas');
    const privacy = document.getElementById('panel-privacy');
    expect(privacy.querySelector('.privacy-summary').textContent).toBe('Every number covers at least 12 people.');
    const details = privacy.querySelector('details');
    expect(details.open).toBe(false);
    expect(details.querySelector('summary').textContent).toBe('Manifest details');
    expect(details.textContent).toContain('privacy unitperson');
    expect([...details.querySelectorAll('li')].map((li) => li.textContent)).toEqual(MANIFEST.rules);
    // the dump is inside the fold, not in the panel's own words
    expect(privacy.textContent.replace(details.textContent, '')).not.toContain('privacy unit');
  });
  it('label each panel with the window its layer covers', () => {
    const spans = { population: [29_640_000, 29_700_000], payments: [28_800_000, 29_700_000], flows: [28_800_000, 29_700_000] };
    const frame = makeFrame({ spans });
    const category = { cells: { a: { 'payments.amount_cny': 30, 'payments.amount_cny|category=food': 30 } }, spans };
    const config = { breakdowns: { category: ['food'] } };
    renderPanels(document, frame, { key: 'payments.amount_cny', metric: { label: 'Spend' }, config, manifest: MANIFEST, places: PLACES, breakdownFrames: { category }, utcOffsetH: 0 });
    expect(text('panel-busiest')).toContain('Busiest places · Spend · 08:00–08:15');
    expect(text('panel-flows')).toContain('Top flows (people) · 08:00–08:15');
    expect(text('panel-spend')).toContain('Spend by category (CNY) · 08:00–08:15');
  });
  it('name the window of a layer, and the longer windows in the privacy words', () => {
    const frame = { spans: { transit: [28_800_000, 29_700_000] } };
    expect(layerOf('transit.tap_in|mode=metro')).toBe('transit');
    expect(spanLabel(frame, 'transit', 8)).toBe('16:00–16:15');
    expect(spanLabel(frame, 'payments')).toBe('');
    expect(withSpan('Taps', frame, 'transit')).toBe('Taps · 08:00–08:15');
    expect(withSpan('Spend', frame, 'payments')).toBe('Spend');
    const line = windowsLine({ population: 60, active: 60, payments: 900, transit: 900, flows: 300 }, 60);
    expect(line).toContain('spend (15 min), transit taps (15 min) and flows (5 min) cover longer windows');
    expect(windowsLine({ population: 60, payments: 60 }, 60)).toBe('');
    expect(privacyModel({ ...MANIFEST, layer_windows_s: { population: 60, payments: 900 } }).lines.join(' ')).toContain('spend (15 min)');
  });
  it('say when no flow and no value can be shown', () => {
    renderPanels(document, makeFrame({ flows: [], cells: { a: { k: null } } }), { key: 'k', config: {}, manifest: MANIFEST, places: PLACES });
    expect(text('panel-flows')).toContain('No flow large enough to show in this window.');
    expect(text('panel-busiest')).toContain('No value released in view in this window.');
  });
  it('say when the first longer window ends, before any has been released', () => {
    const windows = { population: 60, payments: 900, flows: 900 };
    // the minute 08:06-08:07 (UTC): the first quarter hour of spend and flows ends at 08:15
    const frame = makeFrame({ window_start_ms: 29_160_000, window_s: 60, flows: [], spans: { population: [29_160_000, 29_220_000] } });
    expect(pendingSpanText(frame, 'payments', windows)).toBe('first 15-min window ends 08:15');
    expect(pendingSpanText(frame, 'payments', windows, 8)).toBe('first 15-min window ends 16:15');
    expect(pendingSpanText(frame, 'population', windows)).toBe('');
    expect(pendingSpanText({ ...frame, spans: { payments: [28_800_000, 29_700_000] } }, 'payments', windows)).toBe('');
    expect(pendingSpanText(frame, 'payments', undefined)).toBe('');
    renderPanels(document, frame, { key: 'k', config: {}, manifest: { ...MANIFEST, layer_windows_s: windows }, places: PLACES });
    expect(text('panel-flows')).toContain('No flows yet: the first 15-min window ends 08:15.');
    const models = headlineModel(makeTotals([1000, undefined]), { statistics: { population: { persons: [] }, payments: { amount_cny: [] } } });
    renderHeadline(document, models, 6, 0, { payments: pendingSpanText(frame, 'payments', windows) });
    const spend = document.querySelector('#headline .figure[data-key="payments.amount_cny"]');
    expect(spend.querySelector('.figure-unit').textContent).toBe('first 15-min window ends 08:15');
  });
  it('write headline figures with a sparkline each', () => {
    const models = headlineModel(makeTotals([1000, 1234]), { statistics: { population: { persons: [] } } });
    renderHeadline(document, models, 6);
    const fig = document.querySelector('#headline .figure');
    expect(fig.dataset.key).toBe('population.persons');
    expect(fig.querySelector('.figure-value').textContent).toBe('1,234');
    expect(fig.querySelector('.figure-unit').textContent).toBe('people · 1 hidden area');
    expect(fig.querySelectorAll('svg polyline')).toHaveLength(1);
    expect(text('headline')).toContain('sums of the released res-6 cells');
  });
});

describe('localTime', () => {
  it('reads a window start in the city’s own time, across midnight', () => {
    const ms = Date.UTC(2026, 11, 5, 3, 3); // 03:03 UTC
    expect(localTime(ms, 8)).toEqual({ date: '2026-12-05', time: '11:03' });
    expect(localTime(Date.UTC(2026, 11, 5, 20, 30), 8)).toEqual({ date: '2026-12-06', time: '04:30' });
    expect(localTime(ms)).toEqual({ date: '2026-12-05', time: '03:03' });
  });
});
