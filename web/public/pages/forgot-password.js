// Ask for a password-reset link. The answer is the same whether or not the address has an account.
import { h, fill } from '../dom.js';
import { request } from '../api.js';
import { describeError } from '../errors.js';
import { errorBox, field } from '../ui.js';
import { authCard } from './auth-card.js';

export function render(main) {
  const errors = errorBox('forgot-error');
  const email = field({
    id: 'email',
    label: 'Email',
    control: h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true, inputmode: 'email', spellcheck: 'false' }),
  });
  const submit = h('button', { type: 'submit', class: 'button primary wide' }, 'Send reset link');
  const form = h('form', { class: 'stack', novalidate: true }, errors.el, email.el, submit);
  const holder = h('div', null, form);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.clear();
    email.setError(null);
    const value = email.control.value.trim();
    if (!/^[^\s@]+@[^\s@]+$/.test(value)) {
      email.setError('Enter your email address, like name@example.com.');
      email.control.focus();
      return;
    }
    submit.disabled = true;
    try {
      const { data } = await request('POST', '/v1/auth/password-reset', { body: { email: value }, authRedirect: false });
      fill(holder, h('div', { class: 'alert alert-info', role: 'status', id: 'reset-requested' }, h('p', null, data.message), h('p', null, 'The link works once, for an hour.')));
    } catch (error) {
      errors.show(describeError(error));
      submit.disabled = false;
    }
  });

  main.append(
    authCard(
      'Forgot your password?',
      'Enter the email address of your account and we will send you a link to choose a new password.',
      holder,
      h('p', { class: 'auth-switch' }, h('a', { href: '#/login' }, 'Back to log in')),
    ),
  );
}
