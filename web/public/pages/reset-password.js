// Choose a new password with the token of an emailed reset link.
import { h, fill } from '../dom.js';
import { request } from '../api.js';
import { describeError } from '../errors.js';
import { setFlash } from '../state.js';
import { endSession } from '../session.js';
import { errorBox, field } from '../ui.js';
import { authCard, takeLinkToken } from './auth-card.js';

export function render(main, ctx) {
  const token = takeLinkToken();
  const errors = errorBox('reset-error');
  if (!token) {
    errors.show('This page needs the link from your email. Ask for a new one.');
    main.append(authCard('Choose a new password', null, errors.el, h('p', { class: 'auth-switch' }, h('a', { href: '#/forgot-password' }, 'Send a new link'))));
    return;
  }
  const password = field({
    id: 'new-password',
    label: 'New password',
    control: h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: '8' }),
    hint: 'At least 8 characters, not your email address.',
  });
  const submit = h('button', { type: 'submit', class: 'button primary wide' }, 'Set new password');
  const form = h('form', { class: 'stack', novalidate: true }, errors.el, password.el, submit);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.clear();
    password.setError(null);
    if (password.control.value.length < 8) {
      password.setError('Choose a password of at least 8 characters.');
      password.control.focus();
      return;
    }
    submit.disabled = true;
    try {
      await request('POST', '/v1/auth/password-reset/confirm', { body: { token, password: password.control.value }, authRedirect: false });
      // Every session of the account ended, this browser's too.
      endSession();
      setFlash({ kind: 'info', text: 'Your password is changed and every session was signed out. Log in with the new password.' });
      ctx.navigate('#/login');
    } catch (error) {
      if (error.code === 'link_invalid') {
        fill(form, h('div', { class: 'alert alert-error', role: 'alert' }, h('p', null, describeError(error))), h('p', null, h('a', { href: '#/forgot-password' }, 'Send a new link')));
      } else {
        errors.show(describeError(error));
        submit.disabled = false;
      }
    }
  });

  main.append(authCard('Choose a new password', 'Resetting your password signs you out everywhere.', form));
}
