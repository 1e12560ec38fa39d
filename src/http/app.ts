import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyHelmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import {
  createJsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import { scryptHasher, type PasswordHasher } from '../accounts/passwords.ts';
import type { AppContext } from '../context.ts';
import type { EventHub } from '../events/bus.ts';
import type { LifecycleDeps } from '../verifications/lifecycle.ts';
import { installAuthentication, type OpsCredential } from './auth.ts';
import { installInputGuard } from './input-guard.ts';
import { createMetricsRegistry, installHttpMetrics } from './metrics.ts';
import { errorToProblem, problem, sendProblem } from './problem.ts';
import { apiRoutes } from './routes/index.ts';

export type HealthCheck = () => Promise<unknown>;

declare module 'fastify' {
  interface FastifyInstance {
    ctx: AppContext;
    /** What the verification routes buy, cancel and capture with (the provider behind its breaker, …). */
    lifecycle: LifecycleDeps;
    /** This process's live events, for GET /v1/events. */
    hub: EventHub;
    /** Password hashing for sign-up and sign-in: scrypt unless replaced (tests count its calls). */
    passwords: PasswordHasher;
    /** The Prometheus registry behind GET /metrics; add series to it. */
    metrics: Registry;
    /** Checks reported by GET /health besides the database; read on every request, so entries may be added later. */
    healthChecks: Record<string, HealthCheck>;
  }
}

export interface BuildAppOptions {
  lifecycle: LifecycleDeps;
  hub: EventHub;
  passwords?: PasswordHasher;
  healthChecks?: Record<string, HealthCheck>;
  metrics?: Registry;
  /** The local operator token accepted as an admin bearer (embedded mode; see src/accounts/ops-token.ts). */
  ops?: OpsCredential;
  /** The dashboard's static files; default web/public when it exists, false to serve none. */
  staticDir?: string | false;
}

const DEFAULT_STATIC_DIR = fileURLToPath(new URL('../../web/public/', import.meta.url));

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
  app.decorate('passwords', options.passwords ?? scryptHasher);
  app.decorate('metrics', options.metrics ?? createMetricsRegistry());
  app.decorate('healthChecks', options.healthChecks ?? {});

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
          'Temporary phone numbers for one-time codes, paid from a prepaid wallet. Errors are RFC 9457 problem details with a stable `code`.',
      },
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
    transform: createJsonSchemaTransform({ skipList: [] }),
    transformObject: jsonSchemaTransformObject,
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
