// The owner's account: email verification, password, two-factor sign-in, sessions, export, closing.
import { h, fill } from '../dom.js';
import { api, request } from '../api.js';
import { formatDateTime } from '../format.js';
import { describeError } from '../errors.js';
import { setFlash, setState, state } from '../state.js';
import { endSession } from '../session.js';
import { pageHeader, errorBox, field, toast } from '../ui.js';
import { withRecentSignIn } from '../reauth.js';

function card(id, title, ...content) {
  return h('section', { class: 'card', 'aria-labelledby': `${id}-title`, id }, h('h2', { id: `${id}-title`, class: 'card-title' }, title), ...content);
}

function passwordField(id, label, autocomplete = 'current-password') {
  return field({ id, label, control: h('input', { type: 'password', name: id, autocomplete, required: true }) });
}

function codeField(id) {
  return field({
    id,
    label: 'Two-factor code',
    control: h('input', { type: 'text', name: id, autocomplete: 'one-time-code', inputmode: 'numeric', maxlength: '40', spellcheck: 'false' }),
    hint: 'From your authenticator app, or a recovery code.',
  });
}

function secondFactor(value) {
  const text = value.replace(/\s+/g, '');
  if (!text) return {};
  return /^\d{6}$/.test(text) ? { totp_code: text } : { recovery_code: text };
}

export async function render(main, ctx) {
  main.append(pageHeader('Account', 'Your sign-in, your sessions and your data.'));
  const account = await api.get('/v1/account');
  if (!ctx.isCurrent()) return;
  const user = account.user;

  // ---- email
  const emailBody = h('div', { class: 'stack' });
  function renderEmail(verified) {
    const resend = h('button', { type: 'button', class: 'button ghost small', id: 'resend-verification' }, 'Send a new link');
    const errors = errorBox();
    resend.addEventListener('click', async () => {
      resend.disabled = true;
      try {
        const answer = await api.post('/v1/account/email-verification');
        toast(answer.message);
      } catch (error) {
        errors.show(describeError(error));
      } finally {
        resend.disabled = false;
      }
    });
    const needs = account.verified_email_required_for;
    fill(
      emailBody,
      h('p', null, h('strong', null, user.email), ' ', verified ? h('span', { class: 'badge badge-received', id: 'email-state' }, 'Verified') : h('span', { class: 'badge badge-pending', id: 'email-state' }, 'Not verified')),
      verified
        ? null
        : h('p', null, 'We sent a link to this address when you signed up. ', needs.length ? `You need a verified address before ${needs.map((n) => (n === 'purchase' ? 'buying a number' : 'topping up')).join(' or ')}.` : ''),
      verified ? null : resend,
      errors.el,
    );
  }
  renderEmail(user.email_verified);

  // ---- low-balance alert
  const thresholdField = field({
    id: 'low-balance-threshold',
    label: 'Alert me when my available balance goes below',
    control: h('input', { type: 'text', inputmode: 'decimal', name: 'low-balance-threshold', placeholder: 'e.g. 5.00' }),
    hint: 'One notification each time the balance goes below it. Leave empty for no alert.',
  });
  const thresholdSave = h('button', { type: 'submit', class: 'button primary' }, 'Save alert');
  const lowBalanceForm = h('form', { class: 'stack', novalidate: true, id: 'low-balance-form' }, thresholdField.el, thresholdSave);
  api
    .get('/v1/account/low-balance')
    .then((setting) => {
      if (setting.threshold_minor !== null) thresholdField.control.value = (setting.threshold_minor / 100).toFixed(2);
    })
    .catch(() => {});
  lowBalanceForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    thresholdField.setError(null);
    const text = thresholdField.control.value.trim();
    if (text !== '' && !/^\d{1,7}(\.\d{1,2})?$/.test(text)) {
      thresholdField.setError('Enter an amount such as 5 or 5.00 (at most 2 decimal places).');
      return;
    }
    const [whole, cents = ''] = text.split('.');
    const minor = text === '' ? null : Number(whole) * 100 + Number(cents.padEnd(2, '0'));
    if (minor === 0) {
      thresholdField.setError('Enter an amount above zero, or leave it empty for no alert.');
      return;
    }
    thresholdSave.disabled = true;
    try {
      await request('PUT', '/v1/account/low-balance', { body: { threshold_minor: minor } });
      toast(minor === null ? 'Low-balance alert turned off.' : 'Low-balance alert saved.', 'success');
    } catch (error) {
      thresholdField.setError(describeError(error));
    } finally {
      thresholdSave.disabled = false;
    }
  });

  // ---- password
  const passwordErrors = errorBox('password-error');
  const current = passwordField('current-password', 'Current password');
  const next = passwordField('new-password', 'New password', 'new-password');
  const change = h('button', { type: 'submit', class: 'button primary' }, 'Change password');
  const passwordForm = h('form', { class: 'stack', novalidate: true, id: 'password-form' }, passwordErrors.el, current.el, next.el, change);
  passwordForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    passwordErrors.clear();
    change.disabled = true;
    try {
      await api.post('/v1/account/password', { current_password: current.control.value, new_password: next.control.value });
      current.control.value = '';
      next.control.value = '';
      toast('Password changed. Your other sessions were signed out.');
      await loadSessions();
    } catch (error) {
      passwordErrors.show(describeError(error));
    } finally {
      change.disabled = false;
    }
  });

  // ---- two-factor
  const twoFactorBody = h('div', { class: 'stack', id: 'two-factor' });
  async function renderTwoFactor() {
    const status = await api.get('/v1/account/two-factor');
    if (!ctx.isCurrent()) return;
    const errors = errorBox('two-factor-error');
    if (!status.enabled) {
      const start = h('button', { type: 'button', class: 'button primary', id: 'enrol-two-factor' }, 'Turn on two-factor sign-in');
      const prompt = h('div');
      start.addEventListener('click', async () => {
        errors.clear();
        start.disabled = true;
        try {
          const enrolment = await withRecentSignIn(prompt, () => api.post('/v1/account/two-factor'));
          showEnrolment(enrolment);
        } catch (error) {
          if (error?.message !== 'cancelled') errors.show(describeError(error));
          start.disabled = false;
        }
      });
      fill(
        twoFactorBody,
        h('p', null, 'Off. With two-factor sign-in, logging in also needs a code from an app on your phone (Google Authenticator, 1Password, Aegis…).'),
        status.required_for_admins && user.role === 'admin' ? h('div', { class: 'alert alert-error', role: 'alert' }, h('p', null, 'Admins must turn this on before they can use the operator pages.')) : null,
        errors.el,
        start,
        prompt,
      );
      return;
    }
    const password = passwordField('disable-password', 'Password');
    const code = codeField('disable-code');
    const off = h('button', { type: 'submit', class: 'button danger-ghost' }, 'Turn off two-factor sign-in');
    const form = h('form', { class: 'stack', novalidate: true }, errors.el, password.el, code.el, off);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      errors.clear();
      off.disabled = true;
      try {
        await api.post('/v1/account/two-factor/disable', { password: password.control.value, ...secondFactor(code.control.value) });
        toast('Two-factor sign-in is off.');
        await renderTwoFactor();
      } catch (error) {
        errors.show(describeError(error));
        off.disabled = false;
      }
    });
    fill(
      twoFactorBody,
      h('p', null, h('span', { class: 'badge badge-received', id: 'two-factor-state' }, 'On'), ` ${status.recovery_codes_left} recovery codes left.`),
      form,
    );
  }

  function showEnrolment(enrolment) {
    const errors = errorBox('enrol-error');
    const code = field({
      id: 'enrol-code',
      label: 'Code from the app',
      control: h('input', { type: 'text', name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', maxlength: '6', spellcheck: 'false' }),
    });
    const confirm = h('button', { type: 'submit', class: 'button primary' }, 'Confirm and turn on');
    const form = h('form', { class: 'stack', novalidate: true }, errors.el, code.el, confirm);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      errors.clear();
      confirm.disabled = true;
      try {
        const result = await api.post('/v1/account/two-factor/confirm', { code: code.control.value.trim() });
        setState({ user: { ...state.user, two_factor: true } });
        const done = h('button', { type: 'button', class: 'button ghost' }, 'I have saved them');
        done.addEventListener('click', () => renderTwoFactor().catch((error) => errors.show(describeError(error))));
        fill(
          twoFactorBody,
          h('div', { class: 'key-reveal', role: 'region', 'aria-label': 'Recovery codes' },
            h('p', null, h('strong', null, 'Two-factor sign-in is on.'), ' Save these recovery codes now: each one signs you in once if you lose your phone. They will not be shown again.'),
            h('ul', { class: 'recovery-codes', id: 'recovery-codes' }, result.recovery_codes.map((c) => h('li', null, h('code', null, c)))),
            done,
          ),
        );
        done.focus();
      } catch (error) {
        errors.show(describeError(error));
        confirm.disabled = false;
      }
    });
    fill(
      twoFactorBody,
      h('p', null, 'Scan this code with your authenticator app, then type the 6-digit code it shows.'),
      h('img', { src: enrolment.qr_code, alt: 'QR code for your authenticator app', width: '200', height: '200', class: 'qr-code', id: 'two-factor-qr' }),
      h('p', null, 'Or type this key: ', h('code', { id: 'two-factor-secret' }, enrolment.secret)),
      form,
    );
    code.control.focus();
  }

  // ---- sessions
  const sessionErrors = errorBox('sessions-error');
  const sessionRows = h('tbody', { id: 'sessions' });
  const everywhere = h('button', { type: 'button', class: 'button danger-ghost', id: 'sign-out-everywhere' }, 'Sign out everywhere');
  everywhere.addEventListener('click', async () => {
    everywhere.disabled = true;
    try {
      await api.post('/v1/sessions/revoke-all');
      endSession();
      setFlash({ kind: 'info', text: 'Every session was signed out, this one too.' });
      ctx.navigate('#/login');
    } catch (error) {
      sessionErrors.show(describeError(error));
      everywhere.disabled = false;
    }
  });
  async function loadSessions() {
    const list = await api.get('/v1/sessions');
    if (!ctx.isCurrent()) return;
    fill(
      sessionRows,
      list.items.map((s) => {
        const end = h('button', { type: 'button', class: 'button ghost small' }, s.current ? 'This device' : 'Sign out');
        end.disabled = s.current;
        end.addEventListener('click', async () => {
          end.disabled = true;
          try {
            await api.delete(`/v1/sessions/${encodeURIComponent(s.id)}`);
            await loadSessions();
          } catch (error) {
            sessionErrors.show(describeError(error));
          }
        });
        return h(
          'tr',
          { dataset: { id: s.id } },
          h('td', { 'data-label': 'Device' }, s.device ?? 'Unknown device'),
          h('td', { 'data-label': 'Address' }, s.address ?? '—'),
          h('td', { 'data-label': 'Last seen', class: 'nowrap' }, formatDateTime(s.last_seen_at)),
          h('td', { 'data-label': 'Actions', class: 'actions-cell' }, end),
        );
      }),
    );
  }
  const sessionsTable = h(
    'table',
    { class: 'table responsive' },
    h('caption', { class: 'visually-hidden' }, 'Your sessions'),
    h('thead', null, h('tr', null, ['Device', 'Address', 'Last seen', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
    sessionRows,
  );

  // ---- data and closing
  const dataErrors = errorBox('data-error');
  const exportButton = h('button', { type: 'button', class: 'button ghost', id: 'export-data' }, 'Download my data (JSON)');
  exportButton.addEventListener('click', async () => {
    exportButton.disabled = true;
    try {
      const data = await api.get('/v1/account/export');
      const link = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' })), download: `namaskah-account-${user.id}.json` });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (error) {
      dataErrors.show(describeError(error));
    } finally {
      exportButton.disabled = false;
    }
  });
  const closePassword = passwordField('close-password', 'Password');
  const closeCode = codeField('close-code');
  const closeButton = h('button', { type: 'submit', class: 'button danger' }, 'Close my account');
  const closeForm = h('form', { class: 'stack', novalidate: true, id: 'close-account' }, closePassword.el, closeCode.el, closeButton);
  closeForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    dataErrors.clear();
    closeButton.disabled = true;
    try {
      await request('DELETE', '/v1/account', { body: { password: closePassword.control.value, ...secondFactor(closeCode.control.value) } });
      endSession();
      setFlash({ kind: 'info', text: 'Your account is closed.' });
      ctx.navigate('#/login');
    } catch (error) {
      dataErrors.show(describeError(error));
      closeButton.disabled = false;
    }
  });

  main.append(
    card('email-card', 'Email address', emailBody),
    card('password-card', 'Password', passwordForm),
    card('low-balance-card', 'Low-balance alert', lowBalanceForm),
    card('two-factor-card', 'Two-factor sign-in', twoFactorBody),
    card('sessions-card', 'Where you are signed in', sessionErrors.el, h('div', { class: 'table-wrap' }, sessionsTable), everywhere),
    card(
      'data-card',
      'Your data',
      dataErrors.el,
      h('p', null, 'Download everything we keep about you. Closing the account is refused while it holds money; your past payments stay in our books, under an anonymous account.'),
      exportButton,
      closeForm,
    ),
  );
  await Promise.all([renderTwoFactor(), loadSessions()]);
}
