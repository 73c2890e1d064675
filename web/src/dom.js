// Small DOM helpers shared by the renderers (headline, side panels, tooltip).

/** A new `tag` element with an optional class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A table of text cells, one row per entry of `rows`. */
export function table(rows) {
  const t = document.createElement('table');
  for (const cells of rows) {
    const tr = t.insertRow();
    for (const c of cells) tr.insertCell().textContent = c;
  }
  return t;
}
