// Shared UI pieces: toasts and screen-reader announcements, copy buttons, error boxes, badges,
// empty states, and a "load more" pager.
import { h, fill } from './dom.js';
import { describeError } from './errors.js';
import { STATE_LABELS } from './format.js';

/** Visible toast, announced politely (the region is aria-live). */
export function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  region.append(item);
  setTimeout(() => item.classList.add('toast-leaving'), 4500);
  setTimeout(() => item.remove(), 5000);
}

/** Screen-reader-only announcement. */
export function announce(message) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A fresh text node after a tick makes screen readers announce repeated messages too.
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

/** A button that copies `getText()` and says so. */
export function copyButton(getText, label, what) {
  const button = h('button', { type: 'button', class: 'button small ghost copy-button', 'aria-label': label }, 'Copy');
  button.addEventListener('click', async () => {
    const ok = await copyText(getText());
    button.textContent = ok ? 'Copied' : 'Copy failed';
    announce(ok ? `${what} copied to the clipboard.` : `Could not copy the ${what.toLowerCase()}. Select it and copy it by hand.`);
    setTimeout(() => {
      button.textContent = 'Copy';
    }, 2000);
  });
  return button;
}

/**
 * An error area that exists from the start (so assistive tech registers the live region) and is
 * hidden while empty.
 */
export function errorBox(id) {
  const box = h('div', { class: 'alert alert-error', role: 'alert', 'aria-live': 'assertive', id, hidden: true });
  return {
    el: box,
    show(messageOrError, extra) {
      const text = typeof messageOrError === 'string' ? messageOrError : describeError(messageOrError);
      fill(box, h('p', null, text), extra ?? null);
      box.hidden = false;
    },
    clear() {
      box.replaceChildren();
      box.hidden = true;
    },
  };
}

export function stateBadge(stateName) {
  return h('span', { class: `badge badge-${stateName}`, dataset: { state: stateName } }, STATE_LABELS[stateName] ?? stateName);
}

export function pageHeader(title, lede, actions) {
  return h(
    'div',
    { class: 'page-header' },
    h('div', null, h('h1', { tabindex: '-1', class: 'page-title' }, title), lede ? h('p', { class: 'lede' }, lede) : null),
    actions ? h('div', { class: 'page-actions' }, actions) : null,
  );
}

export function emptyState(text) {
  return h('p', { class: 'empty' }, text);
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

/**
 * A cursor pager: pager.el is a "Load more" button; calls load(cursor) → { items, next_cursor }.
 */
export function pager(loadPage, onItems) {
  let cursor = null;
  const button = h('button', { type: 'button', class: 'button ghost load-more', hidden: true }, 'Load more');
  const error = errorBox();
  async function load(reset) {
    if (reset) cursor = null;
    button.disabled = true;
    button.textContent = 'Loading…';
    try {
      const page = await loadPage(cursor);
      cursor = page.next_cursor ?? null;
      onItems(page.items ?? [], reset);
      error.clear();
    } catch (err) {
      error.show(err);
      throw err;
    } finally {
      button.disabled = false;
      button.textContent = 'Load more';
      button.hidden = !cursor;
    }
  }
  button.addEventListener('click', () => load(false).catch(() => {}));
  return { el: h('div', { class: 'pager' }, error.el, button), load };
}

/** Label + control + hint + error, wired with for/aria-describedby. */
export function field({ id, label, control, hint }) {
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  control.id = id;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', describedBy);
  const errorEl = h('p', { class: 'field-error', id: errorId, hidden: true });
  const wrapper = h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    errorEl,
  );
  return {
    el: wrapper,
    control,
    setError(message) {
      if (message) {
        errorEl.textContent = message;
        errorEl.hidden = false;
        control.setAttribute('aria-invalid', 'true');
      } else {
        errorEl.textContent = '';
        errorEl.hidden = true;
        control.removeAttribute('aria-invalid');
      }
    },
  };
}
