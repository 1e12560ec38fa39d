import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { announce, requestPasswordReset, resetPassword, sendEmailVerification, verifyEmail } from '../../accounts/flows.ts';
import { existingAccountMail, newDeviceNotice } from '../../accounts/notices.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../accounts/passwords.ts';
import { recordAudit } from '../../accounts/audit.ts';
import { createSession, isNewDevice, markReauthenticated, revokeSession } from '../../accounts/sessions.ts';
import { accountMailLimits, consumeAttempt, loginLimits, registrationLimits } from '../../accounts/throttle.ts';
import { checkSecondFactor, proveSecondFactor } from '../../accounts/two-factor.ts';
import { authenticateUser, checkCurrentPassword, createUser, findUser, normalizeEmail } from '../../accounts/users.ts';
import { DomainError, isDomainError } from '../../errors.ts';
import {
  clearSessionCookies,
  clientAddress,
  currentSessionId,
  forbidCaching,
  requireUser,
  sessionOrigin,
  setSessionCookies,
} from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { OptionalSecurity } from '../schemas.ts';
import { UserSchema, userResource } from '../../accounts/resource.ts';
import { Security } from '../schemas.ts';

const AuthResponse = z.object({
  user: UserSchema,
  token: z.string().describe('session token: use as Authorization: Bearer, also set as the session cookie'),
});

/** The second step of a sign-in, for accounts with two-factor sign-in on. */
const SecondFactorFields = {
  totp_code: z.string().trim().regex(/^\d{6}$/, 'must be the 6 digits shown by the authenticator app').optional(),
  recovery_code: z.string().trim().min(16).max(40).optional(),
};

/** The same answer whether or not the address has an account (no account enumeration). */
const MailRequested = z.object({ message: z.string() });

/** POST /v1/auth/register, /login, /logout, /verify-email, /password-reset[/confirm], /reauthenticate. */
const authRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, accounts, mailer } = app;

  app.post('/v1/auth/register', {
    schema: {
      operationId: 'register',
      tags: ['auth'],
      summary: 'Create an account (and its wallet) and log in; a verification link is emailed',
      description:
        'The password must not be whitespace only, contain the email (or the part before the @), or be one of the most ' +
        'common passwords; the 400 says which. Registrations are limited per client address and per email (429). ' +
        'An address that already has an account is 409 `email_taken` (the answer carries a session, so it cannot be ' +
        'faked); its owner is told by email, and the per-email limit bounds probing.',
      body: z.strictObject({
        email: z.email().max(254),
        password: z.string().min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH),
      }),
      response: { 201: AuthResponse, ...problemResponses(400, 409, 413, 429) },
      answers: { 201: { description: 'The account and a session token', headers: { 'Set-Cookie': true, 'Cache-Control': true } } },
    },
    handler: async (request, reply) => {
      const now = ctx.clock.now();
      const email = normalizeEmail(request.body.email);
      // Counted before the password is hashed: a refused attempt costs no scrypt work.
      await consumeAttempt(ctx.database.db, registrationLimits(ctx.config, { email, address: clientAddress(request) }), now);
      let user;
      try {
        user = await createUser(ctx.database, request.body, { currency: ctx.config.CURRENCY, now, passwords: app.passwords });
      } catch (error) {
        if (isDomainError(error) && error.code === 'email_taken') {
          mailer.dispatch(() => mailer.send(existingAccountMail(accounts.links(), email)));
        }
        throw error;
      }
      const session = await createSession(ctx.database.db, user.id, {
        now,
        ttlHours: ctx.config.SESSION_TTL_HOURS,
        origin: sessionOrigin(request),
      });
      const userId = user.id;
      mailer.dispatch(() => sendEmailVerification(accounts, userId));
      setSessionCookies(request, reply, ctx.config, session);
      forbidCaching(reply);
      return reply.status(201).send({ user: userResource(user), token: session.token });
    },
  });

  app.post('/v1/auth/login', {
    schema: {
      operationId: 'login',
      tags: ['auth'],
      summary: 'Log in: a session token, also set as the session cookie',
      description:
        'Attempts are limited per account (from all addresses together) and per client address (429 with Retry-After). ' +
        'An account with two-factor sign-in answers 401 `totp_required` until `totp_code` (or an unused `recovery_code`) ' +
        'is sent with the password. A sign-in from a device the account has not used before is announced by email.',
      body: z.strictObject({
        email: z.string().min(1).max(254),
        password: z.string().min(1).max(PASSWORD_MAX_LENGTH),
        ...SecondFactorFields,
      }),
      response: { 200: AuthResponse, ...problemResponses(400, 401, 413, 429) },
      answers: { 200: { description: 'The account and a new session token', headers: { 'Set-Cookie': true, 'Cache-Control': true } } },
    },
    handler: async (request, reply) => {
      const now = ctx.clock.now();
      const email = normalizeEmail(request.body.email);
      // Counted before the password is checked: a refused attempt costs no scrypt work.
      await consumeAttempt(ctx.database.db, loginLimits(ctx.config, { email, address: clientAddress(request) }), now);
      const user = await authenticateUser(ctx.database.db, email, request.body.password, app.passwords);
      const origin = sessionOrigin(request);
      const session = await ctx.database.transaction(async (tx) => {
        const factor = await checkSecondFactor(tx, user.id, { totpCode: request.body.totp_code, recoveryCode: request.body.recovery_code }, now);
        const newDevice = await isNewDevice(tx, user.id, origin);
        const created = await createSession(tx, user.id, { now, ttlHours: ctx.config.SESSION_TTL_HOURS, origin });
        if (factor === 'recovery_code') {
          await recordAudit(tx, { actorId: user.id, actor: 'customer', action: 'user.recovery_code_used', subjectId: user.id, detail: {}, now });
        }
        if (newDevice) {
          await recordAudit(tx, {
            actorId: user.id,
            actor: 'customer',
            action: 'user.new_device_sign_in',
            subjectId: user.id,
            detail: { session_id: created.id, user_agent: origin.userAgent ?? null, address: origin.address },
            now,
          });
          await announce(accounts, tx, user, newDeviceNotice(origin, now), now);
        }
        return created;
      });
      setSessionCookies(request, reply, ctx.config, session);
      forbidCaching(reply);
      return reply.status(200).send({ user: userResource(user), token: session.token });
    },
  });

  app.post('/v1/auth/logout', {
    schema: {
      operationId: 'logout',
      tags: ['auth'],
      security: OptionalSecurity,
      summary: 'End the current session (its token and cookie stop working)',
      description: 'Public: without a valid session it only clears the cookies. With the session cookie it needs X-CSRF-Token (403 `csrf_failed`).',
      headers: z.looseObject({
        'x-csrf-token': z.string().optional().describe('with the session cookie: the value of the `namaskah_csrf` cookie'),
      }),
      response: { 204: z.undefined(), ...problemResponses(401, 403) },
      answers: { 204: { description: 'Logged out; the cookies are cleared', headers: { 'Set-Cookie': true } } },
    },
    handler: async (request, reply) => {
      // Logging out without a valid session just clears the cookies: the outcome the caller wants.
      if (request.principal) {
        await requireUser(request);
        const sessionId = currentSessionId(request);
        if (sessionId) await revokeSession(ctx.database.db, sessionId, ctx.clock.now());
      }
      clearSessionCookies(request, reply, ctx.config);
      return reply.status(204).send();
    },
  });

  app.post('/v1/auth/verify-email', {
    schema: {
      operationId: 'verifyEmail',
      tags: ['auth'],
      summary: 'Confirm an email address with the token of the emailed link',
      description: 'The link works once, until EMAIL_VERIFICATION_TTL_HOURS; a reused, expired or altered token is 400 `link_invalid`.',
      body: z.strictObject({ token: z.string().min(1).max(200) }),
      response: { 200: z.object({ user: UserSchema }), ...problemResponses(400, 413) },
      answers: { 200: { description: 'The address is verified' } },
    },
    handler: async (request) => {
      const user = await verifyEmail(accounts, request.body.token);
      return { user: userResource(user) };
    },
  });

  app.post('/v1/auth/password-reset', {
    schema: {
      operationId: 'requestPasswordReset',
      tags: ['auth'],
      summary: 'Email a password-reset link, if the address has an account',
      description:
        'Always 202 with the same body, whether or not the address has an account; the email is sent after the answer. ' +
        'Limited per email and per client address (429).',
      body: z.strictObject({ email: z.email().max(254) }),
      response: { 202: MailRequested, ...problemResponses(400, 413, 429) },
      answers: { 202: { description: 'The same answer whether or not an account uses the address' } },
    },
    handler: async (request, reply) => {
      const now = ctx.clock.now();
      const email = normalizeEmail(request.body.email);
      await consumeAttempt(ctx.database.db, accountMailLimits(ctx.config, { action: 'password_reset', email, address: clientAddress(request) }), now);
      mailer.dispatch(() => requestPasswordReset(accounts, email));
      return reply.status(202).send({ message: 'If an account uses this address, a reset link is on its way.' });
    },
  });

  app.post('/v1/auth/password-reset/confirm', {
    schema: {
      operationId: 'resetPassword',
      tags: ['auth'],
      summary: 'Set a new password with the token of the emailed reset link; every session of the account ends',
      description: 'The link works once, for PASSWORD_RESET_TTL_MINUTES; a reused, expired or altered token is 400 `link_invalid`.',
      body: z.strictObject({
        token: z.string().min(1).max(200),
        password: z.string().min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH),
      }),
      response: { 204: z.undefined(), ...problemResponses(400, 413) },
      answers: { 204: { description: 'The password is changed and every session of the account ended', headers: { 'Set-Cookie': false } } },
    },
    handler: async (request, reply) => {
      await resetPassword(accounts, request.body.token, request.body.password);
      clearSessionCookies(request, reply, ctx.config);
      return reply.status(204).send();
    },
  });

  app.post('/v1/auth/reauthenticate', {
    preValidation: requireUser,
    schema: {
      operationId: 'reauthenticate',
      tags: ['auth'],
      summary: 'Give the password again: the session counts as a recent sign-in (for new API keys, two-factor changes)',
      security: Security,
      body: z.strictObject({ password: z.string().min(1).max(PASSWORD_MAX_LENGTH), ...SecondFactorFields }),
      response: { 204: z.undefined(), ...problemResponses(400, 401, 403, 413, 429) },
      answers: { 204: { description: 'The session counts as a recent sign-in again' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const sessionId = currentSessionId(request);
      if (!sessionId) throw new DomainError('reauthentication_required', 'only a session can be renewed: sign in');
      const now = ctx.clock.now();
      const found = await findUser(ctx.database.db, me.userId);
      if (!found) throw new DomainError('unauthenticated', 'this account no longer exists');
      await consumeAttempt(ctx.database.db, loginLimits(ctx.config, { email: found.email, address: clientAddress(request) }), now);
      await checkCurrentPassword(ctx.database.db, me.userId, request.body.password, app.passwords);
      await ctx.database.transaction(async (tx) => {
        await proveSecondFactor(tx, me.userId, { totpCode: request.body.totp_code, recoveryCode: request.body.recovery_code }, now);
        await markReauthenticated(tx, sessionId, now);
        await recordAudit(tx, { actorId: me.userId, actor: 'customer', action: 'user.reauthenticated', subjectId: me.userId, detail: { session_id: sessionId }, now });
      });
      return reply.status(204).send();
    },
  });
};

export default authRoutes;
