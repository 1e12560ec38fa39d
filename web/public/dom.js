// Tiny DOM helpers. Everything is built with createElement + textContent, never innerHTML, so
// server data can never become markup, and nothing here needs an inline style or script (the
// server's Content-Security-Policy forbids both).

/**
 * h('button', { class: 'primary', type: 'submit', onclick: fn }, 'Buy')
 * Attributes: `class`, `text`, `dataset`, `on<event>` handlers, booleans (true → present),
 * anything else via setAttribute. Children: nodes, strings, numbers, arrays; null/false skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = String(value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
      else if (key === 'value' || key === 'checked' || key === 'selected') el[key] = value;
      else if (value === true) el.setAttribute(key, '');
      else el.setAttribute(key, String(value));
    }
  }
  appendChildren(el, children);
  return el;
}

export function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace all children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return appendChildren(el, children);
}

let idCounter = 0;
/** A unique id for label/aria wiring. */
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** Show/hide without inline styles. */
export function show(el, visible) {
  el.hidden = !visible;
}
