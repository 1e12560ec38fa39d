// Confirm an email address with the token of an emailed link; works signed in or not.
import { h } from '../dom.js';
import { request } from '../api.js';
import { describeError } from '../errors.js';
import { setState, state } from '../state.js';
import { authCard, takeLinkToken } from './auth-card.js';

export async function render(main, ctx) {
  const token = takeLinkToken();
  const status = h('div', { role: 'status', id: 'verify-status' }, h('p', null, 'Checking your link…'));
  const next = h('p', { class: 'auth-switch' }, h('a', { href: state.user ? '#/account' : '#/login' }, state.user ? 'Go to your account' : 'Log in'));
  main.append(authCard('Verify your email', null, status, next));
  if (!token) {
    status.replaceChildren(h('p', null, 'This page needs the link from your email.'));
    return;
  }
  try {
    const { data } = await request('POST', '/v1/auth/verify-email', { body: { token }, authRedirect: false });
    if (!ctx.isCurrent()) return;
    status.className = 'alert alert-info';
    status.replaceChildren(h('p', null, `Thank you: ${data.user.email} is verified.`));
    if (state.user?.id === data.user.id) setState({ user: { ...state.user, email_verified: true } });
  } catch (error) {
    if (!ctx.isCurrent()) return;
    status.className = 'alert alert-error';
    status.replaceChildren(h('p', null, describeError(error)));
  }
}
