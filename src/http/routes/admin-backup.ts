import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DomainError } from '../../errors.ts';
import { forbidCaching, requireAdmin } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';

/**
 * GET /v1/admin/backup: a consistent snapshot of the embedded database while the server runs, for
 * `namaskah backup` (docs/operations.md, "Backup and restore"). Only the local operator token may
 * take one: the file holds every password hash and key hash, so it is made on the server's own
 * machine by whoever can read DATA_DIR anyway, never downloaded through the dashboard.
 */
const adminBackupRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;

  app.get('/v1/admin/backup', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'backupDatabase',
      tags: ['admin', 'operations'],
      summary: 'A snapshot of the embedded database as a gzipped tar (local operator token only)',
      security: Security,
      response: { 200: z.any().describe('application/gzip'), ...problemResponses(401, 403, 409) },
      answers: {
        200: { description: "PGlite's data-directory archive (gzipped tar)", contentType: 'application/gzip', headers: { 'Cache-Control': true } },
      },
    },
    handler: async (request, reply) => {
      const admin = await requireAdmin(request);
      if (admin.via !== 'ops') {
        throw new DomainError('forbidden', 'a backup is taken with `namaskah backup` on the server’s machine (the local operator token)');
      }
      if (!ctx.database.dumpDataDir) {
        throw new DomainError('conflict', 'this server runs on PostgreSQL: back it up with pg_dump (docs/operations.md)');
      }
      const archive = await ctx.database.dumpDataDir();
      request.log.info({ bytes: archive.length }, 'embedded backup taken');
      forbidCaching(reply);
      return reply.type('application/gzip').send(Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength));
    },
  });
};

export default adminBackupRoutes;
