import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyHelmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import type { AccountDeps } from '../accounts/flows.ts';
import { scryptHasher, type PasswordHasher } from '../accounts/passwords.ts';
import { createMailer, type Mailer } from '../mail/mailer.ts';
import { notifyAccount } from '../notifications/notifications.ts';
import type { AppContext } from '../context.ts';
import type { EventHub } from '../events/bus.ts';
import type { PaymentProcessors } from '../payments/processor.ts';
import { createPaymentProcessors } from '../payments/registry.ts';
import type { PaymentDeps } from '../payments/top-ups.ts';
import type { LifecycleDeps } from '../verifications/lifecycle.ts';
import type { UpstreamHandle } from '../ops/upstreams.ts';
import { installAuthentication, type OpsCredential } from './auth.ts';
import { installInputGuard } from './input-guard.ts';
import { createMetricsRegistry, installHttpMetrics } from './metrics.ts';
import { createOpenApiTransform, openApiTransformObject } from './openapi.ts';
import { errorToProblem, problem, sendProblem } from './problem.ts';
import { apiRoutes } from './routes/index.ts';

export type HealthCheck = () => Promise<unknown>;

declare module 'fastify' {
  interface FastifyInstance {
    ctx: AppContext;
    /** What the verification routes buy, cancel and capture with (the provider behind its breaker, …). */
    lifecycle: LifecycleDeps;
    /** Wallet top-ups: the enabled payment processors with the database, clock and configuration. */
    payments: PaymentDeps;
    /** This process's live events, for GET /v1/events. */
    hub: EventHub;
    /** Password hashing for sign-up and sign-in: scrypt unless replaced (tests count its calls). */
    passwords: PasswordHasher;
    /** Outgoing mail (SMTP or the local outbox). */
    mailer: Mailer;
    /** What the account flows (verification, reset, two-factor, notices) run with. */
    accounts: AccountDeps;
    /** The Prometheus registry behind GET /metrics; add series to it. */
    metrics: Registry;
    /** Checks reported by GET /health besides the database; read on every request, so entries may be added later. */
    healthChecks: Record<string, HealthCheck>;
    /** The configured upstreams (without breakers) with their breakers, for the operator's Upstreams page. */
    upstreams: readonly UpstreamHandle[];
  }
}

export interface BuildAppOptions {
  lifecycle: LifecycleDeps;
  hub: EventHub;
  /** The payment processors (default: those PAYMENT_PROCESSORS enables). */
  processors?: PaymentProcessors;
  passwords?: PasswordHasher;
  /** Outgoing mail; default: the local outbox. */
  mailer?: Mailer;
  healthChecks?: Record<string, HealthCheck>;
  metrics?: Registry;
  /** The local operator token accepted as an admin bearer (embedded mode; see src/accounts/ops-token.ts). */
  ops?: OpsCredential;
  /** The dashboard's static files; default web/public when it exists, false to serve none. */
  staticDir?: string | false;
  /** The configured upstreams, without their breakers (default: the lifecycle's provider). */
  upstreams?: readonly UpstreamHandle[];
}

const API_TAGS = [
  { name: 'auth', description: 'Accounts, sessions and their cookies' },
  { name: 'account', description: 'The signed-in customer' },
  { name: 'wallet', description: 'Balances and the wallet history' },
  { name: 'top-ups', description: 'Paying into the wallet through a payment processor' },
  { name: 'api keys', description: 'Credentials for scripts and servers' },
  { name: 'verifications', description: 'Buying a number, waiting for its code, cancelling' },
  { name: 'notifications', description: 'In-app notices: a code arrived, a refund was issued' },
  { name: 'webhooks', description: 'Endpoints of yours that we call, signed, when something changes' },
  { name: 'events', description: 'Live updates as server-sent events' },
  { name: 'sandbox', description: 'Rehearsal helpers, present only when the sandbox is the provider' },
  { name: 'errors', description: 'The error codes of this API' },
  { name: 'admin', description: 'Operators: users, credits, every verification' },
  { name: 'operations', description: 'Health, metrics, diagnose and reconcile' },
];

/**
 * Bodies are JSON only: a text/plain body is 415 `unsupported_media_type` like any other type
 * (Fastify would otherwise parse it as a string and the answer would be a confusing 400). A write
 * that says `content-type: application/json` but sends nothing is treated as sending no body, so
 * routes that take none accept it and routes that need one answer 400 naming the body.
 */
function installBodyRules(app: FastifyInstance): void {
  app.removeContentTypeParser('text/plain');
  app.addHook('onRequest', async (request) => {
    const { headers } = request;
    const type = headers['content-type'];
    if (type === undefined || type.split(';')[0]!.trim().toLowerCase() !== 'application/json') return;
    const empty = headers['transfer-encoding'] === undefined && (headers['content-length'] ?? '0') === '0';
    if (empty) delete headers['content-type'];
  });
}

const DEFAULT_STATIC_DIR = fileURLToPath(new URL('../../web/public/', import.meta.url));

function listenUrl(app: FastifyInstance): string {
  const address = app.server.address();
  if (!address || typeof address === 'string') return 'http://127.0.0.1';
  const host = ['0.0.0.0', '::', ''].includes(address.address) ? '127.0.0.1' : address.address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

/** The whole HTTP application, not listening: startServer listens, tests may use inject(). */
export function buildApp(ctx: AppContext, options: BuildAppOptions): FastifyInstance {
  const { config } = ctx;
  const app = Fastify({
    loggerInstance: ctx.logger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    trustProxy: config.TRUST_PROXY,
    // close() waits for requests in flight (a purchase must get its answer: SIGTERM on a deploy),
    // drops idle keep-alive connections, and the event streams end themselves (routes/events.ts).
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorate('ctx', ctx);
  app.decorate('lifecycle', options.lifecycle);
  app.decorate('hub', options.hub);
  app.decorate('payments', {
    database: ctx.database,
    clock: ctx.clock,
    config,
    processors: options.processors ?? createPaymentProcessors(config),
    logger: ctx.logger,
  });
  app.decorate('passwords', options.passwords ?? scryptHasher);
  const mailer = options.mailer ?? createMailer({ ...config, SMTP_URL: undefined }, ctx);
  app.decorate('mailer', mailer);
  app.decorate('accounts', {
    database: ctx.database,
    clock: ctx.clock,
    config,
    mailer,
    passwords: options.passwords ?? scryptHasher,
    // PUBLIC_URL, or where this server listens; never a request's Host header (a forged one would
    // send someone's reset link to the attacker's site).
    links: () => ({ base: config.PUBLIC_URL ?? listenUrl(app) }),
    notify: (ex, userId, notice, now) => notifyAccount(ex, { userId, title: notice.title, body: notice.body, now }),
  } satisfies AccountDeps);
  app.decorate('metrics', options.metrics ?? createMetricsRegistry());
  app.decorate('healthChecks', options.healthChecks ?? {});
  app.decorate('upstreams', options.upstreams ?? [{ provider: options.lifecycle.provider, breaker: options.lifecycle.breaker }]);

  app.register(fastifyCookie);
  app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        scriptSrcAttr: ["'none'"],
        // Only behind TLS: on plain http it would send the dashboard's own assets to https.
        ...(config.COOKIE_SECURE === 'true' ? { upgradeInsecureRequests: [] } : {}),
      },
    },
  });
  installAuthentication(app, ctx, options.ops);
  installBodyRules(app);
  installInputGuard(app);
  installHttpMetrics(app, app.metrics);

  app.setErrorHandler((error, request, reply) => {
    const { body, headers } = errorToProblem(error, request);
    if (body.status < 500) request.log.info({ code: body.code, status: body.status }, body.detail);
    return sendProblem(reply, body, headers);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problem('not_found', `no route for ${request.method} ${request.url.split('?')[0]}`)),
  );

  app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Namaskah API',
        version: '1',
        description:
          'Temporary phone numbers for one-time codes, paid from a prepaid wallet. Errors are RFC 9457 problem details ' +
          '(application/problem+json) with a stable `code`; GET /v1/errors lists every code. Guide: docs/integrate.md.',
      },
      // Relative: the API is wherever this document was fetched from.
      servers: [{ url: '/', description: 'the server this document was fetched from' }],
      tags: API_TAGS,
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'an API key (nsk_…) or a session token (nss_…); on /health and /metrics also the METRICS_TOKEN',
          },
          cookieAuth: { type: 'apiKey', in: 'cookie', name: 'namaskah_session', description: 'dashboard session; writes need X-CSRF-Token' },
        },
      },
    },
    transform: createOpenApiTransform(),
    transformObject: openApiTransformObject,
  });
  app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    // Swagger UI sets inline styles; only its own pages relax style-src for that.
    transformStaticCSP: (header) => header.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  for (const route of apiRoutes(config)) app.register(route);

  const staticDir = options.staticDir === undefined ? DEFAULT_STATIC_DIR : options.staticDir;
  if (staticDir && existsSync(staticDir)) {
    app.register(fastifyStatic, { root: staticDir, prefix: '/', index: ['index.html'] });
  }
  return app;
}
