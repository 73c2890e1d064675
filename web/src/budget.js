// The privacy budget meter in the header: how much of the day's privacy budget per person the
// provisional layer has spent so far, from the `budget` of each `now` message. A pure model, a thin renderer.

import { localTime } from './format.js';
import { NOW_TICK_S } from './now.js';

export const HIGH_SHARE = 0.8; // from this share of the day's budget on, the bar turns warm

/** "1.2", "3.0"; small spends keep two decimals ("0.05") so the first minutes do not read 0.0. */
export const epsilonText = (e) => (e > 0 && e < 0.1 ? e.toFixed(2) : e.toFixed(1));

/**
 * What the meter shows for a `now` message's `budget`, or null without one: {text, share, high, title}.
 * `share` (0..1, the bar) is the part of the day's zCDP budget rho spent: rho adds up release by
 * release, so the bar grows evenly and is full exactly when epsilon reaches the day's cap.
 */
export function budgetModel(budget, utcOffsetH = 0) {
  if (!budget || typeof budget.epsilon_spent !== 'number' || typeof budget.epsilon_per_person_day !== 'number') return null;
  const { epsilon_spent: spent, epsilon_per_person_day: cap, rho_spent: rho, rho_per_person_day: rhoCap, delta } = budget;
  const ratio = rhoCap > 0 && typeof rho === 'number' ? rho / rhoCap : cap > 0 ? spent / cap : 0;
  const share = Math.max(0, Math.min(1, ratio));
  const since = typeof budget.period_start_ms === 'number' ? localTime(budget.period_start_ms, utcOffsetH).time : null;
  const text = `privacy budget today: ε ${epsilonText(spent)} of ${epsilonText(cap)}`;
  const title = [
    `The privacy loss, per person, of everything the provisional layer has released so far today: ε ${epsilonText(spent)}`
      + ` of the day's ${epsilonText(cap)}${typeof delta === 'number' ? ` (δ ${delta.toExponential(0)})` : ''}.`,
    `Every ${NOW_TICK_S}-second update spends a little more; no person can lose more than the day's budget.`,
    `It resets when pseudonyms rotate at the period's start${since ? ` (this period began ${since})` : ''}.`,
    `The bar is the share spent (${Math.round(share * 100)}%, counted in zCDP ρ, which adds up update by update).`,
  ].join(' ');
  return { text, share, high: share >= HIGH_SHARE, title };
}

/** Show `model` in the header's #budget (its text, bar and explanation); hidden without a model. */
export function renderBudget(node, model) {
  if (!node) return;
  node.hidden = !model;
  if (!model) return;
  let [text, bar] = [node.querySelector('.budget-text'), node.querySelector('.budget-fill')];
  if (!text || !bar) {
    text = Object.assign(document.createElement('span'), { className: 'budget-text' });
    const track = Object.assign(document.createElement('span'), { className: 'budget-bar' });
    bar = Object.assign(document.createElement('span'), { className: 'budget-fill' });
    track.append(bar);
    node.replaceChildren(text, track);
  }
  // updated in place every 2 s: no element is replaced, so nothing blinks
  text.textContent = model.text;
  bar.style.width = `${(model.share * 100).toFixed(1)}%`;
  node.classList.toggle('budget-high', model.high);
  node.title = model.title;
  node.setAttribute('aria-label', `${model.text}. ${model.title}`);
}
