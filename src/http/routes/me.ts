import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findUser } from '../../accounts/users.ts';
import { DomainError } from '../../errors.ts';
import { walletOf } from '../../ledger/ledger.ts';
import { requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { UserSchema, userResource } from '../../accounts/resource.ts';
import { WalletSchema, walletResource } from '../../ledger/resource.ts';
import { Security } from '../schemas.ts';

/** GET /v1/me: the caller and their wallet. */
const meRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get('/v1/me', {
    preValidation: requireUser,
    schema: {
      operationId: 'getMe',
      tags: ['account'],
      summary: 'The authenticated customer, with wallet balances',
      security: Security,
      response: { 200: z.object({ user: UserSchema, wallet: WalletSchema }), ...problemResponses(401) },
      answers: { 200: { description: 'The customer and their wallet' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const user = await findUser(app.ctx.database.db, me.userId);
      if (!user) throw new DomainError('unauthenticated', 'this account no longer exists');
      const wallet = await walletOf(app.ctx.database.db, user.id);
      return { user: userResource(user), wallet: walletResource(wallet) };
    },
  });
};

export default meRoutes;
