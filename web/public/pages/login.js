// Log in / sign up. One form, two modes (#/login and #/signup).
import { h } from '../dom.js';
import { request, ApiError } from '../api.js';
import { setState, takeFlash } from '../state.js';
import { afterLogin } from '../session.js';
import { describeError } from '../errors.js';
import { errorBox, field } from '../ui.js';

export function render(main, ctx) {
  const signup = ctx.params.mode === 'signup';
  const flash = takeFlash();
  const errors = errorBox('auth-error');

  const email = field({
    id: 'email',
    label: 'Email',
    control: h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true, inputmode: 'email', spellcheck: 'false' }),
  });
  const password = field({
    id: 'password',
    label: 'Password',
    control: h('input', { type: 'password', name: 'password', autocomplete: signup ? 'new-password' : 'current-password', required: true, minlength: '8' }),
    hint: signup ? 'At least 8 characters.' : null,
  });
  const submit = h('button', { type: 'submit', class: 'button primary wide' }, signup ? 'Create account' : 'Log in');
  // The second step of a sign-in, shown when the server answers totp_required.
  const code = field({
    id: 'totp-code',
    label: 'Two-factor code',
    control: h('input', { type: 'text', name: 'totp_code', autocomplete: 'one-time-code', inputmode: 'numeric', spellcheck: 'false', maxlength: '40' }),
    hint: 'The 6 digits your authenticator app shows now, or one of your recovery codes.',
  });
  code.el.hidden = true;

  const form = h('form', { class: 'stack', novalidate: true }, errors.el, email.el, password.el, code.el, submit);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.clear();
    email.setError(null);
    password.setError(null);
    const emailValue = email.control.value.trim();
    const passwordValue = password.control.value;
    let invalid = null;
    if (!emailValue || !/^[^\s@]+@[^\s@]+$/.test(emailValue)) {
      email.setError('Enter your email address, like name@example.com.');
      invalid ??= email.control;
    }
    if (passwordValue.length < 8) {
      password.setError(signup ? 'Choose a password of at least 8 characters.' : 'Enter your password (at least 8 characters).');
      invalid ??= password.control;
    }
    if (invalid) {
      invalid.focus();
      return;
    }
    submit.disabled = true;
    submit.setAttribute('aria-busy', 'true');
    submit.textContent = signup ? 'Creating account…' : 'Logging in…';
    try {
      const body = { email: emailValue, password: passwordValue };
      const second = code.control.value.replace(/\s+/g, '');
      if (!signup && !code.el.hidden && second) {
        if (/^\d{6}$/.test(second)) body.totp_code = second;
        else body.recovery_code = second;
      }
      const { data } = await request('POST', signup ? '/v1/auth/register' : '/v1/auth/login', {
        body,
        authRedirect: false,
      });
      setState({ user: data.user, wallet: null });
      afterLogin();
      window.dispatchEvent(new CustomEvent('namaskah:logged-in'));
    } catch (error) {
      if (error instanceof ApiError && !signup && error.code === 'totp_required') {
        code.el.hidden = false;
        code.control.focus();
        errors.show('This account uses two-factor sign-in. Enter the code from your authenticator app.');
      } else if (error instanceof ApiError && !signup && (error.status === 401 || error.code === 'invalid_credentials')) {
        errors.show('That email and password do not match an account. Check them and try again.');
      } else if (error instanceof ApiError && signup && (error.status === 409 || /exist|taken/i.test(error.code ?? ''))) {
        errors.show('An account with this email already exists. Log in instead.');
      } else {
        errors.show(describeError(error));
      }
      submit.disabled = false;
      submit.removeAttribute('aria-busy');
      submit.textContent = signup ? 'Create account' : 'Log in';
    }
  });

  main.append(
    h(
      'section',
      { class: 'auth' },
      h(
        'div',
        { class: 'auth-brand' },
        h('img', { src: 'favicon.svg', alt: '', width: '40', height: '40' }),
        h('span', null, 'Namaskah'),
      ),
      h(
        'div',
        { class: 'card auth-card' },
        h('h1', { class: 'page-title', tabindex: '-1' }, signup ? 'Create your account' : 'Log in'),
        h('p', { class: 'lede' }, 'Temporary numbers for one-time codes. You only pay when the code arrives — otherwise the hold goes straight back to your wallet.'),
        flash ? h('div', { class: `alert ${flash.kind === 'error' ? 'alert-error' : 'alert-info'}`, role: 'status' }, h('p', null, flash.text)) : null,
        form,
        signup ? null : h('p', { class: 'auth-switch' }, h('a', { href: '#/forgot-password' }, 'Forgot your password?')),
        h(
          'p',
          { class: 'auth-switch' },
          signup ? 'Already have an account? ' : 'New to Namaskah? ',
          h('a', { href: signup ? '#/login' : '#/signup' }, signup ? 'Log in' : 'Create an account'),
        ),
      ),
    ),
  );
}
