// "Confirm your password": sensitive changes (a new API key, two-factor enrolment) need a recent
// sign-in. When the server answers reauthentication_required, ask for the password in place and
// try again.
import { h, fill } from './dom.js';
import { api, ApiError } from './api.js';
import { describeError } from './errors.js';
import { field } from './ui.js';

/** Runs action(); on reauthentication_required, shows a password prompt in `holder` and retries after it. */
export async function withRecentSignIn(holder, action) {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'reauthentication_required') throw error;
  }
  return new Promise((resolve, reject) => {
    const password = field({
      id: 'reauth-password',
      label: 'Confirm your password',
      control: h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true }),
      hint: 'For your safety, this needs your password again.',
    });
    const code = field({
      id: 'reauth-code',
      label: 'Two-factor code (if you use one)',
      control: h('input', { type: 'text', name: 'totp_code', autocomplete: 'one-time-code', inputmode: 'numeric', maxlength: '6' }),
    });
    const confirm = h('button', { type: 'submit', class: 'button primary' }, 'Confirm');
    const cancel = h('button', { type: 'button', class: 'button ghost' }, 'Cancel');
    const form = h('form', { class: 'stack reauth', novalidate: true }, password.el, code.el, h('div', { class: 'button-row' }, confirm, cancel));
    fill(holder, form);
    password.control.focus();
    cancel.addEventListener('click', () => {
      holder.replaceChildren();
      reject(new Error('cancelled'));
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      password.setError(null);
      confirm.disabled = true;
      try {
        const body = { password: password.control.value };
        if (code.control.value.trim()) body.totp_code = code.control.value.trim();
        await api.post('/v1/auth/reauthenticate', body, { authRedirect: false });
        holder.replaceChildren();
        resolve(await action());
      } catch (error) {
        confirm.disabled = false;
        password.setError(error instanceof ApiError && error.code === 'validation_failed' ? 'That password or code is not right.' : describeError(error));
      }
    });
  });
}
