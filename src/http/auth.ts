import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CredentialCache } from '../accounts/credential-cache.ts';
import type { Credential, Principal } from '../accounts/credentials.ts';
import type { NewSession } from '../accounts/sessions.ts';
import { clientAddressKey } from '../accounts/throttle.ts';
import { hashToken, OPS_TOKEN_PREFIX, SESSION_TOKEN_PREFIX, safeEqual } from '../accounts/tokens.ts';
import type { Config } from '../config.ts';
import type { AppContext } from '../context.ts';
import { DomainError } from '../errors.ts';

/**
 * Authentication: `Authorization: Bearer <session token | API key>` for scripts, or the dashboard's
 * session cookie. Cookie-authenticated writes must echo the session's CSRF token in X-CSRF-Token
 * (double-submit: the token is also in the readable `namaskah_csrf` cookie). A bearer token is
 * never sent by a browser on its own, so bearer requests need no CSRF token.
 */
const SESSION_COOKIE = 'namaskah_session';
const CSRF_COOKIE = 'namaskah_csrf';
const CSRF_HEADER = 'x-csrf-token';

export type { Principal };

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling; null when no valid credential was presented. */
    principal: Principal | null;
  }
}

interface AuthState {
  credential?: Credential;
  source?: 'bearer' | 'cookie';
  /** A credential was presented (valid or not): the 401 says which. */
  presented: boolean;
  /** The bearer was the configured METRICS_TOKEN: operator routes only, no user. */
  metricsToken?: boolean;
}

const states = new WeakMap<FastifyRequest, AuthState>();
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Routes whose writes can end or change a credential (sign-out, revocations, password, two-factor, closure, roles). */
const CREDENTIAL_ROUTES = /^\/v1\/(auth|account|sessions|api-keys|admin\/users)(\/|$)/;
/** Writes that only add a credential: nothing cached can be stale after them. */
const NEW_CREDENTIAL_ROUTES = new Set(['/v1/auth/login', '/v1/auth/register']);
const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

export interface OpsCredential {
  /** SHA-256 of the local operator token (src/accounts/ops-token.ts). */
  tokenHash: string;
  /** The admin the operator acts as for reads. */
  userId: string;
}

/** Routes outside /v1 whose details are for operators only (the public gets a short answer or 401). */
const OPERATOR_ROUTES = new Set(['/health', '/metrics']);

export function installAuthentication(app: FastifyInstance, ctx: AppContext, ops?: OpsCredential): void {
  const metricsTokenHash = ctx.config.METRICS_TOKEN ? hashToken(ctx.config.METRICS_TOKEN) : undefined;
  app.decorateRequest('principal', null);
  // Resolved keys and sessions, kept until a credential changes anywhere (credential-cache.ts).
  const credentials = new CredentialCache(ctx.database);
  app.addHook('onReady', () => credentials.start());
  app.addHook('onClose', () => credentials.stop());
  // A change made by this process counts here before its answer leaves (the signal reaches the
  // other processes, and this one too, a moment after the commit).
  app.addHook('onSend', async (request, _reply, payload) => {
    const route = request.routeOptions.url ?? '';
    if (!SAFE_METHODS.has(request.method) && CREDENTIAL_ROUTES.test(route) && !NEW_CREDENTIAL_ROUTES.has(route)) credentials.invalidate();
    return payload;
  });
  app.addHook('onRequest', async (request) => {
    // Static files need no principal, and an anonymous probe of /health costs no database query.
    const route = request.routeOptions.url;
    if (route === undefined || (!route.startsWith('/v1/') && !OPERATOR_ROUTES.has(route))) return;
    const state: AuthState = { presented: false };
    states.set(request, state);
    const header = request.headers.authorization;
    let token: string | undefined;
    if (header !== undefined) {
      state.presented = true;
      state.source = 'bearer';
      token = BEARER.exec(header)?.[1];
    } else {
      const cookie = request.cookies?.[SESSION_COOKIE];
      if (cookie) {
        state.presented = true;
        state.source = 'cookie';
        // Only session tokens live in cookies; an API key there is refused.
        token = cookie.startsWith(SESSION_TOKEN_PREFIX) ? cookie : undefined;
      }
    }
    if (!token) return;
    if (metricsTokenHash && state.source === 'bearer' && safeEqual(hashToken(token), metricsTokenHash)) {
      state.metricsToken = true;
    } else if (token.startsWith(OPS_TOKEN_PREFIX)) {
      if (ops && state.source === 'bearer' && safeEqual(hashToken(token), ops.tokenHash)) {
        state.credential = { principal: { userId: ops.userId, role: 'admin', via: 'ops' } };
      }
    } else if (route.startsWith('/v1/')) {
      state.credential = await credentials.resolve(token, ctx.clock.now());
    } else {
      // /health must still answer when the database does not: a token that cannot be checked counts as none.
      state.credential = await credentials.resolve(token, ctx.clock.now()).catch(() => undefined);
    }
    request.principal = state.credential?.principal ?? null;
  });
}

/** The calling user, or 401; for cookie-authenticated writes also checks the CSRF token (403). */
export async function requireUser(request: FastifyRequest): Promise<Principal> {
  const state = states.get(request);
  const credential = state?.credential;
  if (!credential) {
    throw new DomainError(
      'unauthenticated',
      state?.presented
        ? 'the session or API key is invalid, expired or revoked'
        : 'log in, or send Authorization: Bearer <API key or session token>',
    );
  }
  if (state.source === 'cookie' && !SAFE_METHODS.has(request.method)) {
    const sent = request.headers[CSRF_HEADER];
    if (typeof sent !== 'string' || !credential.csrfToken || !safeEqual(sent, credential.csrfToken)) {
      throw new DomainError('csrf_failed', `cookie-authenticated writes must send the ${CSRF_COOKIE} cookie's value in X-CSRF-Token`);
    }
  }
  return credential.principal;
}

/**
 * The calling admin; a customer gets 403 `forbidden`. With REQUIRE_ADMIN_2FA, an admin who has not
 * turned on two-factor sign-in gets 403 `two_factor_required` (they can still sign in and enrol);
 * the local operator token is the operator at the machine and is not affected.
 */
export async function requireAdmin(request: FastifyRequest): Promise<Principal> {
  const principal = await requireUser(request);
  if (principal.role !== 'admin') throw new DomainError('forbidden', 'this needs the admin role');
  if (request.server.ctx.config.REQUIRE_ADMIN_2FA && principal.via !== 'ops' && !principal.twoFactor) {
    throw new DomainError('two_factor_required', 'admins must turn on two-factor sign-in first (REQUIRE_ADMIN_2FA)');
  }
  return principal;
}

/**
 * For sensitive changes (a new API key, two-factor enrolment): a session whose password was given
 * within RECENT_SIGN_IN_MINUTES. An API key is never enough; the local operator token is.
 */
export function requireRecentSignIn(request: FastifyRequest, principal: Principal): void {
  if (principal.via === 'ops') return;
  const credential = states.get(request)?.credential;
  const window = request.server.ctx.config.RECENT_SIGN_IN_MINUTES * 60_000;
  const at = credential?.authenticatedAt;
  if (principal.via === 'session' && at && request.server.ctx.clock.now().getTime() - at.getTime() <= window) return;
  throw new DomainError(
    'reauthentication_required',
    principal.via === 'api_key'
      ? 'sign in to the dashboard (or POST /v1/auth/login) to do this: an API key cannot'
      : `this needs a sign-in within the last ${request.server.ctx.config.RECENT_SIGN_IN_MINUTES} minutes: POST /v1/auth/reauthenticate with your password`,
  );
}

/** Where a sign-in comes from, kept with its session. */
export function sessionOrigin(request: FastifyRequest): { userAgent?: string; address: string } {
  const agent = request.headers['user-agent'];
  return { userAgent: typeof agent === 'string' && agent.trim() !== '' ? agent.trim() : undefined, address: request.ip };
}

/**
 * Whether the caller may see operational details (/health checks, /metrics): an admin (session
 * cookie or bearer), the local operator token, or the configured METRICS_TOKEN.
 */
export function isOperator(request: FastifyRequest): boolean {
  const state = states.get(request);
  return state?.metricsToken === true || state?.credential?.principal.role === 'admin';
}

/** For operator-only routes: 401 without a valid credential, 403 for a customer. */
export function requireOperator(request: FastifyRequest): void {
  if (isOperator(request)) return;
  const state = states.get(request);
  if (state?.credential) throw new DomainError('forbidden', 'this needs the admin role or the metrics token');
  throw new DomainError(
    'unauthenticated',
    state?.presented
      ? 'the token is invalid, expired or revoked'
      : 'send Authorization: Bearer <METRICS_TOKEN>, or an admin session or API key',
  );
}

/**
 * For answers that carry a session token or an API key: no cache (browser, proxy or CDN) may keep
 * a copy of them.
 */
export function forbidCaching(reply: FastifyReply): void {
  reply.header('cache-control', 'no-store');
}

/** The client address whose attempts are counted together (TRUST_PROXY decides what request.ip is). */
export function clientAddress(request: FastifyRequest): string {
  return clientAddressKey(request.ip);
}

/** The session behind this request, when it is authenticated by one (logout revokes it). */
export function currentSessionId(request: FastifyRequest): string | undefined {
  return states.get(request)?.credential?.sessionId;
}

function secure(request: FastifyRequest, config: Config): boolean {
  if (config.COOKIE_SECURE === 'true') return true;
  if (config.COOKIE_SECURE === 'false') return false;
  // request.protocol follows X-Forwarded-Proto only when TRUST_PROXY is on.
  return request.protocol === 'https';
}

export function setSessionCookies(request: FastifyRequest, reply: FastifyReply, config: Config, session: NewSession): void {
  const common = { path: '/', sameSite: 'lax' as const, secure: secure(request, config), expires: session.expiresAt };
  reply.setCookie(SESSION_COOKIE, session.token, { ...common, httpOnly: true });
  // Readable by the dashboard's script, which echoes it in X-CSRF-Token.
  reply.setCookie(CSRF_COOKIE, session.csrfToken, { ...common, httpOnly: false });
}

export function clearSessionCookies(request: FastifyRequest, reply: FastifyReply, config: Config): void {
  const common = { path: '/', sameSite: 'lax' as const, secure: secure(request, config) };
  reply.clearCookie(SESSION_COOKIE, { ...common, httpOnly: true });
  reply.clearCookie(CSRF_COOKIE, { ...common, httpOnly: false });
}
