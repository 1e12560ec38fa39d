import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../accounts/passwords.ts';
import { createSession, revokeSession } from '../../accounts/sessions.ts';
import { consumeAttempt, loginLimits, registrationLimits } from '../../accounts/throttle.ts';
import { authenticateUser, createUser, normalizeEmail } from '../../accounts/users.ts';
import { clearSessionCookies, clientAddress, currentSessionId, forbidCaching, requireUser, setSessionCookies } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { OptionalSecurity } from '../schemas.ts';
import { UserSchema, userResource } from '../../accounts/resource.ts';

const AuthResponse = z.object({
  user: UserSchema,
  token: z.string().describe('session token: use as Authorization: Bearer, also set as the session cookie'),
});

/** POST /v1/auth/register, /login, /logout. */
const authRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;

  app.post('/v1/auth/register', {
    schema: {
      operationId: 'register',
      tags: ['auth'],
      summary: 'Create an account (and its wallet) and log in',
      description:
        'The password must not be whitespace only, contain the email (or the part before the @), or be one of the most ' +
        'common passwords; the 400 says which. Registrations are limited per client address and per email (429).',
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
      const user = await createUser(ctx.database, request.body, { currency: ctx.config.CURRENCY, now, passwords: app.passwords });
      const session = await createSession(ctx.database.db, user.id, { now, ttlHours: ctx.config.SESSION_TTL_HOURS });
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
      description: 'Attempts are limited per account (from all addresses together) and per client address (429 with Retry-After).',
      body: z.strictObject({
        email: z.string().min(1).max(254),
        password: z.string().min(1).max(PASSWORD_MAX_LENGTH),
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
      const session = await createSession(ctx.database.db, user.id, { now, ttlHours: ctx.config.SESSION_TTL_HOURS });
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
};

export default authRoutes;
