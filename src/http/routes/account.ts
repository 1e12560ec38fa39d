import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listPresets } from '../../accounts/presets.ts';
import { lowBalanceThreshold } from '../../notifications/low-balance.ts';
import { listReports } from '../../verifications/reports.ts';
import { listApiKeys } from '../../accounts/api-keys.ts';
import { recordAudit } from '../../accounts/audit.ts';
import { accountAuditTrail, closeAccount } from '../../accounts/closure.ts';
import { announce, changePassword, sendEmailVerification } from '../../accounts/flows.ts';
import { twoFactorNotice } from '../../accounts/notices.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../accounts/passwords.ts';
import { UserSchema, userResource } from '../../accounts/resource.ts';
import { listActiveSessions } from '../../accounts/sessions.ts';
import { accountMailLimits, consumeAttempt, loginLimits } from '../../accounts/throttle.ts';
import {
  beginTotpEnrolment,
  confirmTotpEnrolment,
  disableTwoFactor,
  proveSecondFactor,
  recoveryCodesLeft,
} from '../../accounts/two-factor.ts';
import { checkCurrentPassword, findUser } from '../../accounts/users.ts';
import { DomainError } from '../../errors.ts';
import { walletHistory, walletOf } from '../../ledger/ledger.ts';
import { historyItemResource, walletResource } from '../../ledger/resource.ts';
import { listNotifications } from '../../notifications/notifications.ts';
import { notificationResource } from '../../notifications/resource.ts';
import { listVerifications } from '../../verifications/resource.ts';
import { clearSessionCookies, clientAddress, currentSessionId, forbidCaching, requireRecentSignIn, requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';

const ProofOfOwner = {
  password: z.string().min(1).max(PASSWORD_MAX_LENGTH),
  totp_code: z.string().trim().regex(/^\d{6}$/, 'must be the 6 digits shown by the authenticator app').optional(),
  recovery_code: z.string().trim().min(16).max(40).optional(),
};

/**
 * The signed-in owner's account: email verification, password change, two-factor sign-in, the
 * export of their data, and closing the account.
 */
const accountRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, accounts, mailer } = app;

  /** The password (limited like a login) and, when two-factor sign-in is on, a code: for changes that cannot be undone. */
  async function proveOwner(request: FastifyRequest, userId: string, body: { password: string; totp_code?: string; recovery_code?: string }) {
    const now = ctx.clock.now();
    const user = await findUser(ctx.database.db, userId);
    if (!user) throw new DomainError('unauthenticated', 'this account no longer exists');
    await consumeAttempt(ctx.database.db, loginLimits(ctx.config, { email: user.email, address: clientAddress(request) }), now);
    await checkCurrentPassword(ctx.database.db, userId, body.password, app.passwords);
    await proveSecondFactor(ctx.database.db, userId, { totpCode: body.totp_code, recoveryCode: body.recovery_code }, now);
    return user;
  }

  app.post('/v1/account/email-verification', {
    preValidation: requireUser,
    schema: {
      operationId: 'sendEmailVerification',
      tags: ['account'],
      summary: 'Send a new email-verification link (earlier links stop working)',
      security: Security,
      response: { 202: z.object({ message: z.string() }), ...problemResponses(401, 403, 429) },
      answers: { 202: { description: 'A new link is on its way (or the address is verified already)' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const user = await findUser(ctx.database.db, me.userId);
      if (!user) throw new DomainError('unauthenticated', 'this account no longer exists');
      if (user.emailVerifiedAt) return reply.status(202).send({ message: 'This address is already verified.' });
      await consumeAttempt(
        ctx.database.db,
        accountMailLimits(ctx.config, { action: 'email_verification', email: user.email, address: clientAddress(request) }),
        ctx.clock.now(),
      );
      mailer.dispatch(() => sendEmailVerification(accounts, user.id));
      return reply.status(202).send({ message: `A new verification link is on its way to ${user.email}.` });
    },
  });

  app.post('/v1/account/password', {
    preValidation: requireUser,
    schema: {
      operationId: 'changePassword',
      tags: ['account'],
      summary: 'Change the password (the current one is required); your other sessions end',
      security: Security,
      body: z.strictObject({
        current_password: z.string().min(1).max(PASSWORD_MAX_LENGTH),
        new_password: z.string().min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH),
      }),
      response: { 204: z.undefined(), ...problemResponses(400, 401, 403, 429) },
      answers: { 204: { description: 'Changed; every other session of the account is ended' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      if (me.via === 'ops') throw new DomainError('forbidden', 'the operator token has no password to change');
      const user = await findUser(ctx.database.db, me.userId);
      if (!user) throw new DomainError('unauthenticated', 'this account no longer exists');
      // Guessing the current password is a login attempt.
      await consumeAttempt(ctx.database.db, loginLimits(ctx.config, { email: user.email, address: clientAddress(request) }), ctx.clock.now());
      await changePassword(accounts, {
        userId: me.userId,
        sessionId: currentSessionId(request),
        currentPassword: request.body.current_password,
        newPassword: request.body.new_password,
      });
      return reply.status(204).send();
    },
  });

  app.get('/v1/account/two-factor', {
    preValidation: requireUser,
    schema: {
      operationId: 'getTwoFactor',
      tags: ['account'],
      summary: 'Whether two-factor sign-in is on, and how many recovery codes are left',
      security: Security,
      response: {
        200: z.object({ enabled: z.boolean(), recovery_codes_left: z.number().int(), required_for_admins: z.boolean() }),
        ...problemResponses(401),
      },
      answers: { 200: { description: 'Whether two-factor sign-in is on, and how many recovery codes are left' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const user = await findUser(ctx.database.db, me.userId);
      return {
        enabled: user?.twoFactor ?? false,
        recovery_codes_left: await recoveryCodesLeft(ctx.database.db, me.userId),
        required_for_admins: ctx.config.REQUIRE_ADMIN_2FA,
      };
    },
  });

  app.post('/v1/account/two-factor', {
    preValidation: requireUser,
    schema: {
      operationId: 'startTwoFactorEnrolment',
      tags: ['account'],
      summary: 'Start two-factor enrolment: a TOTP secret and its QR code (on once a first code confirms it)',
      description: 'Needs a recent sign-in (RECENT_SIGN_IN_MINUTES; 403 `reauthentication_required`).',
      security: Security,
      response: {
        201: z.object({
          secret: z.string().describe('base32, for typing into an authenticator app'),
          otpauth_uri: z.string(),
          qr_code: z.string().describe('the otpauth URI as an SVG data: URL'),
        }),
        ...problemResponses(401, 403, 409),
      },
      answers: { 201: { description: 'The secret and its QR code, shown this once; confirm with a code to turn it on', headers: { 'Cache-Control': true } } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      requireRecentSignIn(request, me);
      const user = await findUser(ctx.database.db, me.userId);
      if (!user) throw new DomainError('unauthenticated', 'this account no longer exists');
      const enrolment = await beginTotpEnrolment(ctx.database.db, user);
      forbidCaching(reply);
      return reply.status(201).send({ secret: enrolment.secret, otpauth_uri: enrolment.uri, qr_code: enrolment.qrCode });
    },
  });

  app.post('/v1/account/two-factor/confirm', {
    preValidation: requireUser,
    schema: {
      operationId: 'confirmTwoFactor',
      tags: ['account'],
      summary: 'Confirm enrolment with a first code: two-factor sign-in is on; the recovery codes are shown this once',
      security: Security,
      body: z.strictObject({ code: z.string().trim().regex(/^\d{6}$/, 'must be the 6 digits shown by the authenticator app') }),
      response: { 200: z.object({ recovery_codes: z.array(z.string()) }), ...problemResponses(400, 401, 403, 409) },
      answers: { 200: { description: 'Two-factor sign-in is on; the recovery codes, shown this once', headers: { 'Cache-Control': true } } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      requireRecentSignIn(request, me);
      const now = ctx.clock.now();
      const codes = await ctx.database.transaction(async (tx) => {
        const user = await findUser(tx, me.userId);
        if (!user) throw new DomainError('unauthenticated', 'this account no longer exists');
        const created = await confirmTotpEnrolment(tx, me.userId, request.body.code, now);
        await recordAudit(tx, { actorId: me.userId, actor: 'customer', action: 'user.two_factor_on', subjectId: me.userId, detail: {}, now });
        await announce(accounts, tx, user, twoFactorNotice(true, now), now);
        return created;
      });
      forbidCaching(reply);
      return { recovery_codes: codes };
    },
  });

  app.post('/v1/account/two-factor/disable', {
    preValidation: requireUser,
    schema: {
      operationId: 'disableTwoFactor',
      tags: ['account'],
      summary: 'Turn two-factor sign-in off (password and a current code or recovery code required)',
      security: Security,
      body: z.strictObject(ProofOfOwner),
      response: { 204: z.undefined(), ...problemResponses(400, 401, 403, 429) },
      answers: { 204: { description: 'Two-factor sign-in is off' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const user = await proveOwner(request, me.userId, request.body);
      if (!user.twoFactor) return reply.status(204).send();
      const now = ctx.clock.now();
      await ctx.database.transaction(async (tx) => {
        await disableTwoFactor(tx, me.userId);
        await recordAudit(tx, { actorId: me.userId, actor: 'customer', action: 'user.two_factor_off', subjectId: me.userId, detail: {}, now });
        await announce(accounts, tx, user, twoFactorNotice(false, now), now);
      });
      return reply.status(204).send();
    },
  });

  app.get('/v1/account/export', {
    preValidation: requireUser,
    schema: {
      operationId: 'exportAccount',
      tags: ['account'],
      summary: 'Everything the service keeps about you, as JSON (account, wallet and its history, verifications, reports, presets, keys, sessions, notifications, security events)',
      security: Security,
      response: { 200: z.record(z.string(), z.unknown()), ...problemResponses(401) },
      answers: { 200: { description: "The caller's own data as JSON, as a download", headers: { 'Cache-Control': true } } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const db = ctx.database.db;
      const user = await findUser(db, me.userId);
      if (!user) throw new DomainError('unauthenticated', 'this account no longer exists');
      const now = ctx.clock.now();
      const history = [];
      for (let after; ; ) {
        const page = await walletHistory(db, me.userId, { after, limit: 500 });
        history.push(...page.items.map(historyItemResource));
        if (!page.nextCursor) break;
        after = { at: page.items.at(-1)!.createdAt, id: page.items.at(-1)!.id };
      }
      const verifications = [];
      for (let after; ; ) {
        const page = await listVerifications(db, { userId: me.userId, after, limit: 500 });
        verifications.push(...page.items.map(({ user_email: _email, ...view }) => view));
        if (!page.nextCursor) break;
        const last = page.items.at(-1)!;
        after = { at: new Date(last.created_at), id: last.id };
      }
      const notifications = [];
      for (let after; ; ) {
        const page = await listNotifications(db, me.userId, { after, limit: 500 });
        notifications.push(...page.items.map(notificationResource));
        if (!page.nextCursor) break;
        const last = page.items.at(-1)!;
        after = { at: last.createdAt, id: last.id };
      }
      const keys = await listApiKeys(db, me.userId);
      const sessions = await listActiveSessions(db, me.userId, now);
      const events = await accountAuditTrail(db, me.userId);
      forbidCaching(reply);
      reply.header('content-disposition', `attachment; filename="namaskah-account-${user.id}.json"`);
      return {
        exported_at: now.toISOString(),
        user: userResource(user),
        wallet: walletResource(await walletOf(db, me.userId)),
        wallet_history: history,
        verifications,
        number_reports: await listReports(db, me.userId),
        presets: await listPresets(db, me.userId),
        low_balance_threshold_minor: await lowBalanceThreshold(db, me.userId),
        api_keys: keys.map((k) => ({
          id: k.id,
          name: k.name,
          prefix: k.prefix,
          created_at: k.createdAt.toISOString(),
          last_used_at: k.lastUsedAt?.toISOString() ?? null,
          revoked_at: k.revokedAt?.toISOString() ?? null,
        })),
        sessions: sessions.map((s) => ({
          id: s.id,
          user_agent: s.userAgent,
          address: s.address,
          created_at: s.createdAt.toISOString(),
          last_seen_at: s.lastSeenAt.toISOString(),
        })),
        notifications,
        security_events: events.map((e) => ({ action: e.action, actor: e.actor, detail: e.detail, created_at: e.createdAt.toISOString() })),
      };
    },
  });

  app.delete('/v1/account', {
    preValidation: requireUser,
    schema: {
      operationId: 'closeAccount',
      tags: ['account'],
      summary: 'Close your account (password, and a code when two-factor sign-in is on)',
      description:
        'Refused with 409 `account_has_funds` while the wallet holds a balance or money on hold. The account is anonymised, ' +
        'never removed: the ledger keeps its transfers. Every session and API key stops working.',
      security: Security,
      body: z.strictObject(ProofOfOwner),
      response: { 204: z.undefined(), ...problemResponses(400, 401, 403, 409, 429) },
      answers: { 204: { description: 'Closed: the account is anonymised, its ledger history kept', headers: { 'Set-Cookie': false } } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      if (me.via === 'ops') throw new DomainError('forbidden', 'the operator token cannot close an account');
      await proveOwner(request, me.userId, request.body);
      await ctx.database.transaction((tx) => closeAccount(tx, me.userId, ctx.clock.now()));
      clearSessionCookies(request, reply, ctx.config);
      return reply.status(204).send();
    },
  });

  app.get('/v1/account', {
    preValidation: requireUser,
    schema: {
      operationId: 'getAccount',
      tags: ['account'],
      summary: 'Your account and the rules that apply to it',
      security: Security,
      response: {
        200: z.object({
          user: UserSchema,
          verified_email_required_for: z.array(z.enum(['purchase', 'top_up'])),
        }),
        ...problemResponses(401),
      },
      answers: { 200: { description: "The caller's account: email and its verification, two-factor, what an unverified address may do" } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const user = await findUser(ctx.database.db, me.userId);
      if (!user) throw new DomainError('unauthenticated', 'this account no longer exists');
      return { user: userResource(user), verified_email_required_for: ctx.config.REQUIRE_VERIFIED_EMAIL_FOR };
    },
  });
};

export default accountRoutes;
