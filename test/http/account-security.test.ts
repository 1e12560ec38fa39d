import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { generate } from 'otplib';
import { scryptHasher, type PasswordHasher } from '../../src/accounts/passwords.ts';
import { rows, firstRow } from '../../src/db/database.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { engines } from '../support/db.ts';
import { assertProblem, call, Client, login, registerUser, uniqueEmail, type TestUser } from '../support/http.ts';
import { handlerApi } from '../support/handler-api.ts';
import { linkToken, startSmtpServer, type TestSmtpServer } from '../support/smtp.ts';

/**
 * The account flows through the HTTP API, with mail delivered over SMTP to a real in-process SMTP
 * server and read back from what it received: email verification, password reset, password change,
 * two-factor sign-in, sessions, API keys, export and closure. Time is a manual clock.
 */
const MINUTE = 60_000;

async function totpNow(secret: string, clock: ManualClock): Promise<string> {
  return generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) });
}

for (const engine of engines) {
  describe(`account security over HTTP [${engine}]`, { timeout: 120_000 }, () => {
    let smtp: TestSmtpServer;
    let app: TestApp;
    const clock = new ManualClock('2026-03-01T10:00:00Z');
    const logLines: string[] = [];
    /** Every secret the flows handed out, checked against the log at the end. */
    const secrets: string[] = [];
    let hashes = 0;
    const passwords: PasswordHasher = {
      hash: (password) => {
        hashes++;
        return scryptHasher.hash(password);
      },
      verify: scryptHasher.verify,
    };

    before(async () => {
      smtp = await startSmtpServer();
      app = await startTestApp({
        engine,
        clock,
        worker: false,
        passwords,
        env: { SMTP_URL: smtp.url, MAIL_FROM: 'Namaskah <accounts@namaskah.test>', LOG_LEVEL: 'debug' },
        logDestination: { write: (line: string) => void logLines.push(line) },
      });
    });
    after(async () => {
      await app.close();
      await smtp.close();
    });

    const settled = () => app.app.mailer.settled();

    test('sign-up sends a verification link over SMTP; it works once, and not when expired or altered', async () => {
      const user = await registerUser(app.url);
      secrets.push(user.password, user.token);
      assert.equal((await user.client.get('/v1/me')).body.user.email_verified, false);
      const mail = await smtp.waitFor(user.email, /Confirm your email/);
      assert.equal(mail.from, 'accounts@namaskah.test');
      const { link, token } = linkToken(mail, 'verify-email');
      secrets.push(token);
      assert.ok(link.startsWith(`${app.url}/#/verify-email?token=nse_`), link);

      assertProblem(await call(app.url, 'POST', '/v1/auth/verify-email', { body: { token: `${token.slice(0, -2)}xx` } }), 400, 'link_invalid');
      const verified = await call(app.url, 'POST', '/v1/auth/verify-email', { body: { token } });
      assert.equal(verified.status, 200, verified.text);
      assert.equal(verified.body.user.email_verified, true);
      assertProblem(await call(app.url, 'POST', '/v1/auth/verify-email', { body: { token } }), 400, 'link_invalid');
      assert.equal((await user.client.get('/v1/me')).body.user.email_verified, true);

      // Expired: a second account's link, used after EMAIL_VERIFICATION_TTL_HOURS.
      const late = await registerUser(app.url);
      const lateToken = linkToken(await smtp.waitFor(late.email, /Confirm your email/), 'verify-email').token;
      clock.advance(app.config.EMAIL_VERIFICATION_TTL_HOURS * 60 * MINUTE + 1);
      assertProblem(await call(app.url, 'POST', '/v1/auth/verify-email', { body: { token: lateToken } }), 400, 'link_invalid');
      // Resend: a new link, and only the newest works.
      const resent = await late.client.post('/v1/account/email-verification');
      assert.equal(resent.status, 202, resent.text);
      const fresh = linkToken(await smtp.waitFor(late.email, /Confirm your email/, { after: 1 }), 'verify-email').token;
      assert.notEqual(fresh, lateToken);
      assert.equal((await call(app.url, 'POST', '/v1/auth/verify-email', { body: { token: fresh } })).status, 200);
      const audit = await rows<{ action: string }>(app.ctx.database.db, sql`SELECT action FROM audit_log WHERE subject_id = ${late.id} ORDER BY id`);
      assert.deepEqual(audit.map((a) => a.action), ['user.email_verified']);
    });

    test('password reset: the same answer for unknown addresses, a single-use link within the hour, every session ended', async () => {
      const user = await registerUser(app.url);
      const other = await login(app.url, user.email, user.password);
      await settled();
      const before = smtp.received.length;
      const unknown = await call(app.url, 'POST', '/v1/auth/password-reset', { body: { email: uniqueEmail('nobody') } });
      const known = await call(app.url, 'POST', '/v1/auth/password-reset', { body: { email: user.email.toUpperCase() } });
      assert.equal(unknown.status, 202);
      assert.equal(known.status, 202);
      assert.deepEqual(known.body, unknown.body, 'the answer does not tell whether the address has an account');
      assert.equal(known.headers.get('content-length'), unknown.headers.get('content-length'));
      await settled();
      assert.deepEqual(
        smtp.received.slice(before).map((m) => [m.to, m.subject]),
        [[[user.email], 'Reset your password']],
        'only the existing account gets mail',
      );
      const { token } = linkToken(smtp.received.at(-1)!, 'reset-password');
      secrets.push(token);

      // A refused password does not spend the link.
      const weak = await call(app.url, 'POST', '/v1/auth/password-reset/confirm', { body: { token, password: user.email } });
      assertProblem(weak, 400, 'validation_failed');
      assertProblem(
        await call(app.url, 'POST', '/v1/auth/password-reset/confirm', { body: { token: token.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')), password: 'a-new-strong-pass-1' } }),
        400,
        'link_invalid',
      );
      // A made-up token is refused before any password hashing.
      const hashesBefore = hashes;
      for (const made of ['nsr_' + 'A'.repeat(43), 'nss_' + 'B'.repeat(43), 'garbage']) {
        assertProblem(await call(app.url, 'POST', '/v1/auth/password-reset/confirm', { body: { token: made, password: 'a-new-strong-pass-1' } }), 400, 'link_invalid');
      }
      assert.equal(hashes, hashesBefore, 'no scrypt work for an invalid link');
      const newPassword = 'a-new-strong-pass-1';
      secrets.push(newPassword);
      const reset = await call(app.url, 'POST', '/v1/auth/password-reset/confirm', { body: { token, password: newPassword } });
      assert.equal(reset.status, 204, reset.text);
      assertProblem(await call(app.url, 'POST', '/v1/auth/password-reset/confirm', { body: { token, password: 'another-pass-22' } }), 400, 'link_invalid');
      assertProblem(await user.client.get('/v1/me'), 401, 'unauthenticated');
      assertProblem(await other.client.get('/v1/me'), 401, 'unauthenticated');
      assertProblem(await call(app.url, 'POST', '/v1/auth/login', { body: { email: user.email, password: user.password } }), 401, 'unauthenticated');
      const again = await login(app.url, user.email, newPassword);
      assert.equal((await again.client.get('/v1/me')).body.user.email_verified, true, 'the link reached the address: it is verified');
      await smtp.waitFor(user.email, /password was reset/);

      // Expired after PASSWORD_RESET_TTL_MINUTES.
      await call(app.url, 'POST', '/v1/auth/password-reset', { body: { email: user.email } });
      await settled();
      const expiring = linkToken(smtp.received.filter((m) => m.subject === 'Reset your password').at(-1)!, 'reset-password').token;
      clock.advance(app.config.PASSWORD_RESET_TTL_MINUTES * MINUTE + 1);
      assertProblem(await call(app.url, 'POST', '/v1/auth/password-reset/confirm', { body: { token: expiring, password: 'yet-another-pass-3' } }), 400, 'link_invalid');
      // A verification token is not a reset token.
      assertProblem(await call(app.url, 'POST', '/v1/auth/password-reset/confirm', { body: { token: 'nse_' + expiring.slice(4), password: 'yet-another-pass-3' } }), 400, 'link_invalid');
      const audit = await rows<{ action: string; detail: { sessions_ended?: number } }>(
        app.ctx.database.db,
        sql`SELECT action, detail FROM audit_log WHERE subject_id = ${user.id} AND action = 'user.password_reset'`,
      );
      assert.deepEqual(audit.map((a) => a.detail.sessions_ended), [2]);
    });

    test('one reset link used by several requests at once: exactly one sets the password', async () => {
      const user = await registerUser(app.url);
      await call(app.url, 'POST', '/v1/auth/password-reset', { body: { email: user.email } });
      await settled();
      const { token } = linkToken(smtp.received.filter((m) => m.to.includes(user.email) && m.subject === 'Reset your password').at(-1)!, 'reset-password');
      const candidates = Array.from({ length: 6 }, (_, i) => `racing-pass-${i}-x`);
      const answers = await Promise.all(
        candidates.map((password) => call(app.url, 'POST', '/v1/auth/password-reset/confirm', { body: { token, password } })),
      );
      assert.deepEqual(answers.map((a) => a.status).sort(), [204, 400, 400, 400, 400, 400]);
      const winner = candidates[answers.findIndex((a) => a.status === 204)]!;
      for (const password of candidates) {
        const signIn = await call(app.url, 'POST', '/v1/auth/login', { body: { email: user.email, password } });
        assert.equal(signIn.status, password === winner ? 200 : 401, password);
      }
    });

    test('sign-up with a taken address: 409, and the owner is told by email', async () => {
      const user = await registerUser(app.url);
      assertProblem(await call(app.url, 'POST', '/v1/auth/register', { body: { email: user.email, password: 'someone-else-1' } }), 409, 'email_taken');
      const mail = await smtp.waitFor(user.email, /tried to sign up/);
      assert.match(mail.text, /#\/forgot-password/);
    });

    test('password-reset requests are limited per email, identically for unknown addresses', async () => {
      clock.advance(60 * MINUTE);
      const user = await registerUser(app.url);
      const unknown = uniqueEmail('ghost');
      for (let i = 0; i < 5; i++) {
        assert.equal((await call(app.url, 'POST', '/v1/auth/password-reset', { body: { email: user.email } })).status, 202);
        assert.equal((await call(app.url, 'POST', '/v1/auth/password-reset', { body: { email: unknown } })).status, 202);
      }
      const refusedKnown = await call(app.url, 'POST', '/v1/auth/password-reset', { body: { email: user.email } });
      const refusedUnknown = await call(app.url, 'POST', '/v1/auth/password-reset', { body: { email: unknown } });
      assertProblem(refusedKnown, 429, 'rate_limited');
      assertProblem(refusedUnknown, 429, 'rate_limited');
      assert.equal(refusedKnown.body.detail, refusedUnknown.body.detail);
      assert.equal(refusedKnown.headers.get('retry-after'), refusedUnknown.headers.get('retry-after'));
      await settled();
    });

    test('changing the password asks for the current one and ends the other sessions', async () => {
      const user = await registerUser(app.url);
      const other = await login(app.url, user.email, user.password);
      assertProblem(
        await user.client.post('/v1/account/password', { current_password: 'not-the-password', new_password: 'changed-pass-44' }),
        400,
        'validation_failed',
      );
      assert.equal((await other.client.get('/v1/me')).status, 200, 'a wrong current password changes nothing');
      const changed = await user.client.post('/v1/account/password', { current_password: user.password, new_password: 'changed-pass-44' });
      assert.equal(changed.status, 204, changed.text);
      assert.equal((await user.client.get('/v1/me')).status, 200, 'this session stays');
      assertProblem(await other.client.get('/v1/me'), 401, 'unauthenticated');
      await login(app.url, user.email, 'changed-pass-44');
      await smtp.waitFor(user.email, /password was changed/);
    });

    test('two-factor sign-in: QR enrolment, a code works once, recovery codes once, off with password and code', async () => {
      const user = await registerUser(app.url);
      const enrol = await user.client.post('/v1/account/two-factor');
      assert.equal(enrol.status, 201, enrol.text);
      assert.match(enrol.body.qr_code, /^data:image\/svg\+xml;base64,/);
      assert.match(Buffer.from(enrol.body.qr_code.split(',')[1], 'base64').toString('utf8'), /<svg/);
      assert.match(enrol.body.otpauth_uri, /^otpauth:\/\/totp\/Namaskah:/);
      const secret = enrol.body.secret as string;
      secrets.push(secret);
      // An hour away: outside the drift allowed.
      const stale = await generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) - 3600 });
      assertProblem(await user.client.post('/v1/account/two-factor/confirm', { code: stale }), 400, 'validation_failed');
      const confirmed = await user.client.post('/v1/account/two-factor/confirm', { code: await totpNow(secret, clock) });
      assert.equal(confirmed.status, 200, confirmed.text);
      const recovery = confirmed.body.recovery_codes as string[];
      assert.equal(recovery.length, 10);
      secrets.push(...recovery);
      assert.equal((await user.client.get('/v1/me')).body.user.two_factor, true);
      const stored = await rows<{ code_hash: string }>(app.ctx.database.db, sql`SELECT code_hash FROM recovery_codes WHERE user_id = ${user.id}`);
      assert.equal(stored.length, 10);
      assert.ok(stored.every((r) => !recovery.some((code) => r.code_hash.includes(code))), 'stored hashed');

      // The code of the step it was confirmed with is spent; the next step's works once.
      const signIn = (extra: Record<string, string> = {}) =>
        call(app.url, 'POST', '/v1/auth/login', { body: { email: user.email, password: user.password, ...extra } });
      assertProblem(await signIn(), 401, 'totp_required');
      assertProblem(await signIn({ totp_code: await totpNow(secret, clock) }), 401, 'unauthenticated');
      clock.advance(30_000);
      const code = await totpNow(secret, clock);
      assert.equal((await signIn({ totp_code: code })).status, 200);
      assertProblem(await signIn({ totp_code: code }), 401, 'unauthenticated');
      assertProblem(await signIn({ password: 'wrong-password', totp_code: code } as Record<string, string>), 401, 'unauthenticated');
      // One code, several sign-ins at once: exactly one gets a session.
      clock.advance(30_000);
      const racing = await totpNow(secret, clock);
      const raced = await Promise.all(Array.from({ length: 5 }, () => signIn({ totp_code: racing })));
      assert.deepEqual(raced.map((r) => r.status).sort(), [200, 401, 401, 401, 401]);
      assert.equal((await signIn({ recovery_code: recovery[0]!.toUpperCase() })).status, 200);
      assertProblem(await signIn({ recovery_code: recovery[0]! }), 401, 'unauthenticated');

      // Signed in already: a missing or wrong code is a 400 naming the field, never a 401 that reads as "signed out".
      assertProblem(await user.client.post('/v1/account/two-factor/disable', { password: user.password }), 400, 'validation_failed');
      assertProblem(await user.client.post('/v1/account/two-factor/disable', { password: user.password, totp_code: '123456' }), 400, 'validation_failed');
      assert.equal((await user.client.get('/v1/me')).body.user.two_factor, true);
      clock.advance(30_000);
      const off = await user.client.post('/v1/account/two-factor/disable', { password: user.password, totp_code: await totpNow(secret, clock) });
      assert.equal(off.status, 204, off.text);
      assert.equal((await signIn()).status, 200);
      const actions = await rows<{ action: string }>(app.ctx.database.db, sql`SELECT action FROM audit_log WHERE subject_id = ${user.id} ORDER BY id`);
      assert.deepEqual(
        actions.map((a) => a.action).filter((a) => a.startsWith('user.two') || a === 'user.recovery_code_used'),
        ['user.two_factor_on', 'user.recovery_code_used', 'user.two_factor_off'],
      );
    });

    test('sessions: listed with device and address, one or all signed out; a new device is announced', async () => {
      const user = await registerUser(app.url);
      const phone = await call(app.url, 'POST', '/v1/auth/login', {
        body: { email: user.email, password: user.password },
        headers: { 'user-agent': 'PhoneBrowser/1.0' },
      });
      assert.equal(phone.status, 200);
      const mail = await smtp.waitFor(user.email, /New sign-in/);
      assert.match(mail.text, /PhoneBrowser\/1\.0/);
      const listed = await user.client.get('/v1/sessions');
      assert.equal(listed.body.items.length, 2);
      const mobile = listed.body.items.find((s: { device: string }) => s.device === 'PhoneBrowser/1.0');
      assert.ok(mobile && mobile.address === '127.0.0.1' && mobile.current === false);
      assert.equal(listed.body.items.filter((s: { current: boolean }) => s.current).length, 1);
      const notices = await user.client.get('/v1/notifications');
      assert.ok(notices.body.items.some((n: { kind: string; title: string }) => n.kind === 'account_security' && /New sign-in/.test(n.title)));

      // Someone else's session is not found; one's own is ended.
      const stranger = await registerUser(app.url);
      assertProblem(await stranger.client.delete(`/v1/sessions/${mobile.id}`), 404, 'not_found');
      assert.equal((await user.client.delete(`/v1/sessions/${mobile.id}`)).status, 204);
      assertProblem(await new Client(app.url, phone.body.token).get('/v1/me'), 401, 'unauthenticated');

      const second = await login(app.url, user.email, user.password);
      const everywhere = await user.client.post('/v1/sessions/revoke-all');
      assert.equal(everywhere.body.ended, 2);
      assertProblem(await user.client.get('/v1/me'), 401, 'unauthenticated');
      assertProblem(await second.client.get('/v1/me'), 401, 'unauthenticated');
    });

    test('API keys: a recent sign-in to create one, an email for each, last-used time shown', async () => {
      const user = await registerUser(app.url);
      const created = await user.client.post('/v1/api-keys', { name: 'bot' });
      assert.equal(created.status, 201, created.text);
      secrets.push(created.body.key);
      const mail = await smtp.waitFor(user.email, /new API key/);
      assert.match(mail.text, /"bot"/);
      assert.ok(!mail.text.includes(created.body.key), 'the key itself is never mailed');
      assertProblem(await new Client(app.url, created.body.key).post('/v1/api-keys', { name: 'from a key' }), 403, 'reauthentication_required');
      await new Client(app.url, created.body.key).get('/v1/wallet');
      const keys = await user.client.get('/v1/api-keys');
      assert.equal(keys.body.items[0].last_used_at, clock.now().toISOString());

      clock.advance((app.config.RECENT_SIGN_IN_MINUTES + 1) * MINUTE);
      assertProblem(await user.client.post('/v1/api-keys', { name: 'later' }), 403, 'reauthentication_required');
      assertProblem(await user.client.post('/v1/auth/reauthenticate', { password: 'wrong-password' }), 400, 'validation_failed');
      assert.equal((await user.client.post('/v1/auth/reauthenticate', { password: user.password })).status, 204);
      assert.equal((await user.client.post('/v1/api-keys', { name: 'later' })).status, 201);
    });

    test('export: the own data as JSON; closing is refused while money is held, then anonymises and keeps the transfers', async () => {
      const user = await registerUser(app.url);
      const admin = await login(app.url, app.admin.email, app.admin.password);
      const credit = (amount: number) => admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: amount, reason: 'test' });
      assert.equal((await credit(500)).status, 201);
      const exported = await user.client.get('/v1/account/export');
      assert.equal(exported.status, 200);
      assert.match(exported.headers.get('content-disposition') ?? '', /attachment/);
      assert.equal(exported.body.user.email, user.email);
      assert.equal(exported.body.wallet.balance_minor, 500);
      assert.deepEqual(exported.body.wallet_history.map((h: { type: string }) => h.type), ['topup']);
      assert.ok(!JSON.stringify(exported.body).includes('hash'), 'no credential material');

      const closing = await call(app.url, 'DELETE', '/v1/account', { token: user.token, body: { password: user.password } });
      assertProblem(closing, 409, 'account_has_funds');
      assert.equal(closing.body.balance_minor, 500);
      assertProblem(await call(app.url, 'DELETE', '/v1/account', { token: user.token, body: { password: 'wrong-password' } }), 400, 'validation_failed');
      assert.equal((await credit(-500)).status, 201);
      const closed = await call(app.url, 'DELETE', '/v1/account', { token: user.token, body: { password: user.password } });
      assert.equal(closed.status, 204, closed.text);
      assertProblem(await user.client.get('/v1/me'), 401, 'unauthenticated');
      assertProblem(await call(app.url, 'POST', '/v1/auth/login', { body: { email: user.email, password: user.password } }), 401, 'unauthenticated');
      const row = await firstRow<{ email: string; deleted_at: Date | null }>(app.ctx.database.db, sql`SELECT email, deleted_at FROM users WHERE id = ${user.id}`);
      assert.equal(row?.email, `deleted-${user.id}@deleted.invalid`);
      assert.ok(row?.deleted_at);
      const transfers = await firstRow<{ n: number }>(
        app.ctx.database.db,
        sql`SELECT count(*)::int AS n FROM ledger_transfers t JOIN ledger_accounts a ON a.id IN (t.debit_account_id, t.credit_account_id) WHERE a.user_id = ${user.id}`,
      );
      assert.equal(transfers?.n, 2, 'the ledger keeps both transfers');
      // The address is free again; the old account is not revived.
      const reused = await registerUser(app.url, { email: user.email });
      assert.notEqual(reused.id, user.id);
    });

    test('diagnose warns about admins without two-factor sign-in while it is not required', async () => {
      const admin = await login(app.url, app.admin.email, app.admin.password);
      const report = await admin.client.get('/v1/admin/diagnose');
      assert.equal(report.status, 200, report.text);
      assert.equal(report.body.ok, true, 'a warning never fails the report');
      const warning = report.body.warnings.find((w: string) => /without two-factor sign-in/.test(w));
      assert.ok(warning?.includes(app.admin.email), JSON.stringify(report.body.warnings));
    });

    test('no token, code, password or secret reaches the log', async () => {
      await settled();
      const text = logLines.join('');
      assert.ok(text.length > 0);
      for (const secret of secrets) {
        assert.ok(secret.length >= 8 && !text.includes(secret), `a secret (${secret.slice(0, 4)}…) reached the log`);
      }
      assert.ok(!text.includes(smtp.received[0]!.text.slice(0, 40)), 'no mail text in the log');
    });
  });
}

describe('the local outbox and the verified-email policy [pglite]', { timeout: 120_000 }, () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp({ worker: false, env: { REQUIRE_VERIFIED_EMAIL_FOR: 'purchase,top_up', REQUIRE_ADMIN_2FA: 'true' } });
  });
  after(() => app.close());

  test('without SMTP_URL mail lands in the outbox, which only admins read', async () => {
    const user: TestUser = await registerUser(app.url);
    await app.app.mailer.settled();
    assert.equal(app.app.mailer.transport, 'outbox');
    assertProblem(await user.client.get('/v1/admin/mail'), 403, 'forbidden');
    const admin = await login(app.url, app.admin.email, app.admin.password);
    // REQUIRE_ADMIN_2FA: the admin may sign in, but admin routes wait for two-factor enrolment.
    assertProblem(await admin.client.get('/v1/admin/mail'), 403, 'two_factor_required');
    const clock = new ManualClock(Date.now());
    const enrol = await admin.client.post('/v1/account/two-factor');
    const code = await totpNow(enrol.body.secret, clock);
    assert.equal((await admin.client.post('/v1/account/two-factor/confirm', { code })).status, 200);
    const outbox = await admin.client.get(`/v1/admin/mail?to=${encodeURIComponent(user.email)}`);
    assert.equal(outbox.status, 200, outbox.text);
    assert.equal(outbox.body.transport, 'outbox');
    assert.equal(outbox.body.items.length, 1);
    assert.equal(outbox.body.items[0].subject, 'Confirm your email address');
    assert.equal(outbox.headers.get('cache-control'), 'no-store');
    const report = await admin.client.get('/v1/admin/diagnose');
    // Only the server's own settings may still be warned about (autovacuum on a CI PostgreSQL).
    assert.deepEqual(
      report.body.warnings.filter((w: string) => !w.startsWith('autovacuum is off')),
      [],
      'required and enrolled: nothing to warn about',
    );
  });

  test('REQUIRE_VERIFIED_EMAIL_FOR=purchase,top_up: 403 email_unverified until the link is used, nothing stored', async () => {
    const user = await registerUser(app.url);
    const buy = () => user.client.post('/v1/verifications', { service: 'test_success' }, { headers: { 'idempotency-key': `k-${Math.random()}` } });
    assertProblem(await buy(), 403, 'email_unverified');
    const none = await firstRow<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM verifications WHERE user_id = ${user.id}`);
    assert.equal(none?.n, 0);
    const topUp = () => user.client.post('/v1/top-ups', { amount_minor: 1000 }, { headers: { 'idempotency-key': `t-${Math.random()}` } });
    assertProblem(await topUp(), 403, 'email_unverified');
    const noTopUps = await firstRow<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM top_ups WHERE user_id = ${user.id}`);
    assert.equal(noTopUps?.n, 0);
    assert.deepEqual((await user.client.get('/v1/account')).body.verified_email_required_for, ['purchase', 'top_up']);
    // The SMS-Activate protocol refuses the same way, in its own words.
    const key = (await user.client.post('/v1/api-keys', { name: 'tool' })).body.key as string;
    const protocolBuy = () => handlerApi(app.url, { api_key: key, action: 'getNumber', service: 'testsuccess' });
    assert.equal((await protocolBuy()).text, 'ACCOUNT_INACTIVE');
    await app.app.mailer.settled();
    const mail = await firstRow<{ body: string }>(app.ctx.database.db, sql`SELECT body FROM mail_outbox WHERE recipient = ${user.email} AND subject LIKE 'Confirm%'`);
    const token = /token=([A-Za-z0-9_-]+)/.exec(mail!.body)![1]!;
    assert.equal((await call(app.url, 'POST', '/v1/auth/verify-email', { body: { token } })).status, 200);
    // Verified now: the refusal is gone (the wallet is empty, so the purchase meets the next rule).
    assertProblem(await buy(), 402, 'insufficient_funds');
    assert.equal((await protocolBuy()).text, 'NO_BALANCE');
    assert.equal((await topUp()).status, 201);
  });
});
