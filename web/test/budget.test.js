// @vitest-environment happy-dom
// The privacy budget meter in the header (src/budget.js): its words and bar from a `now` message's budget.
import { describe, expect, it } from 'vitest';
import { budgetModel, epsilonText, renderBudget } from '../src/budget.js';
import { NOW } from './page-fixtures.js';

describe('the budget meter', () => {
  it('reads the epsilon spent of the day\'s, with a bar of the rho spent', () => {
    const m = budgetModel(NOW.budget, 8);
    expect(m.text).toBe('privacy budget today: ε 1.2 of 3.0');
    expect(m.share).toBeCloseTo(0.05 / 0.147);
    expect(m.high).toBe(false);
    expect(m.title).toContain('per person, of everything the provisional layer has released so far today');
    expect(m.title).toContain('resets when pseudonyms rotate');
    expect(m.title).toContain('this period began 04:00');
    expect(m.title).toContain('(34%');
  });

  it('keeps small spends readable, caps the bar, and is absent without a budget', () => {
    expect(epsilonText(0.05)).toBe('0.05');
    expect(epsilonText(0)).toBe('0.0');
    expect(epsilonText(2.96)).toBe('3.0');
    const full = budgetModel({ ...NOW.budget, rho_spent: 0.2, epsilon_spent: 3.4 });
    expect([full.share, full.high]).toEqual([1, true]);
    expect(budgetModel({ epsilon_spent: 1.5, epsilon_per_person_day: 3 }).share).toBe(0.5); // no rho: epsilon's share
    expect(budgetModel(undefined)).toBeNull();
    expect(budgetModel({ period_start_ms: 0 })).toBeNull();
  });

  it('renders in place: the same nodes, new words, bar and explanation; hidden without a model', () => {
    const node = document.createElement('span');
    node.hidden = true;
    renderBudget(node, budgetModel(NOW.budget, 8));
    expect(node.hidden).toBe(false);
    const [text, bar] = [node.querySelector('.budget-text'), node.querySelector('.budget-fill')];
    expect(text.textContent).toBe('privacy budget today: ε 1.2 of 3.0');
    expect(bar.style.width).toBe('34.0%');
    expect(node.title).toContain('resets when pseudonyms rotate');
    renderBudget(node, budgetModel({ ...NOW.budget, rho_spent: 0.14, epsilon_spent: 2.9 }, 8));
    expect(node.querySelector('.budget-text')).toBe(text);
    expect(text.textContent).toBe('privacy budget today: ε 2.9 of 3.0');
    expect(node.classList.contains('budget-high')).toBe(true);
    renderBudget(node, null);
    expect(node.hidden).toBe(true);
  });
});
