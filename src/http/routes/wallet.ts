import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { walletHistory, walletOf } from '../../ledger/ledger.ts';
import { requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { HistoryItemSchema, historyItemResource, WalletSchema, walletResource } from '../../ledger/resource.ts';
import { Page, pageQuery, Security } from '../schemas.ts';


/** GET /v1/wallet and /v1/wallet/transactions. */
const walletRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;

  app.get('/v1/wallet', {
    preValidation: requireUser,
    schema: {
      operationId: 'getWallet',
      tags: ['wallet'],
      summary: 'Wallet balances',
      security: Security,
      response: { 200: WalletSchema, ...problemResponses(401) },
      answers: { 200: { description: 'Balance, held and available amounts in minor units' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      return walletResource(await walletOf(ctx.database.db, me.userId));
    },
  });

  app.get('/v1/wallet/transactions', {
    preValidation: requireUser,
    schema: {
      operationId: 'listWalletTransactions',
      tags: ['wallet'],
      summary: 'Wallet history, newest first',
      security: Security,
      querystring: z.object({
        ...pageQuery({ max: 100, default: 20 }),
      }),
      response: {
        200: Page(HistoryItemSchema),
        ...problemResponses(400, 401),
      },
      answers: { 200: { description: 'A page of wallet movements; `next_cursor` is null on the last page' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const { cursor, limit } = request.query;
      const page = await walletHistory(ctx.database.db, me.userId, { after: cursor, limit });
      return { items: page.items.map(historyItemResource), next_cursor: page.nextCursor };
    },
  });
};

export default walletRoutes;
