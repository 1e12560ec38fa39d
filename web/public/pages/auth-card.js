// The frame the signed-out pages share (log in, forgot password, reset, verify).
import { h } from '../dom.js';

export function authCard(title, lede, ...content) {
  return h(
    'section',
    { class: 'auth' },
    h('div', { class: 'auth-brand' }, h('img', { src: 'favicon.svg', alt: '', width: '40', height: '40' }), h('span', null, 'Namaskah')),
    h('div', { class: 'card auth-card' }, h('h1', { class: 'page-title', tabindex: '-1' }, title), lede ? h('p', { class: 'lede' }, lede) : null, ...content),
  );
}

/**
 * The token of an emailed link (#/route?token=…), taken out of the address bar at once so that it
 * is not left in the history or shown over someone's shoulder.
 */
export function takeLinkToken() {
  const query = location.hash.split('?')[1] ?? '';
  const token = new URLSearchParams(query).get('token');
  if (token) history.replaceState(null, '', location.hash.split('?')[0]);
  return token;
}
