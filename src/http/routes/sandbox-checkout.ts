import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { z } from 'zod';
import { formatMinor } from '../../money.ts';
import { SandboxProcessor, type SandboxEventType } from '../../payments/processors/sandbox.ts';
import { findTopUp } from '../../payments/top-ups.ts';
import type { TopUpRow } from '../../payments/schema.ts';

/**
 * The sandbox processor's checkout page, served by us: the customer picks Pay, Fail or Abandon.
 * Pay and Fail are followed by the sandbox's signed webhook, delivered to our own
 * /webhooks/payments/sandbox through the same route and checks as a real processor's; only that
 * webhook credits. Then the customer returns to the dashboard, which follows the top-up live.
 * Plain HTML forms: no script, so the strict CSP holds.
 */
const isUuid = z.uuid();

const sandboxCheckoutRoutes: FastifyPluginAsync = async (app) => {
  const processor = app.payments.processors.get('sandbox');
  if (!(processor instanceof SandboxProcessor)) return;
  const { ctx } = app;
  // The page's forms post urlencoded bodies with nothing in them that matters.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => done(null, body));

  const returnTo = (reply: FastifyReply, row: TopUpRow) => reply.redirect(`/#/top-ups/${row.id}`, 303);
  const checkoutOf = async (id: string) => (isUuid.safeParse(id).success ? await findTopUp(ctx.database.db, id) : undefined);
  const notFound = (reply: FastifyReply, what: string) => reply.status(404).type('text/html; charset=utf-8').send(page('Not found', `<p>No such ${what}.</p>`));

  app.get<{ Params: { id: string } }>('/checkout/sandbox/:id', { schema: { hide: true } }, async (request, reply) => {
    const row = await checkoutOf(request.params.id);
    if (!row || row.processor !== 'sandbox') return notFound(reply, 'checkout');
    const amount = formatMinor(row.amountMinor, row.currency);
    const body =
      row.status === 'pending'
        ? `<p>Pay <strong data-amount>${amount}</strong> into your Namaskah wallet.</p>
           <p class="muted">Sandbox checkout: no real money moves. Pay sends a signed payment webhook; Fail sends a declined one; Abandon sends nothing.</p>
           <div class="actions">
             <form method="post" action="/checkout/sandbox/${row.id}/pay"><button type="submit" name="choice" value="pay">Pay ${amount}</button></form>
             <form method="post" action="/checkout/sandbox/${row.id}/fail"><button type="submit" name="choice" value="fail">Fail</button></form>
             <form method="post" action="/checkout/sandbox/${row.id}/abandon"><button type="submit" name="choice" value="abandon">Abandon</button></form>
           </div>`
        : `<p>This checkout is ${row.status}.</p><p><a href="/#/top-ups/${row.id}">Back to Namaskah</a></p>`;
    return reply.type('text/html; charset=utf-8').send(page(`Sandbox checkout — ${amount}`, body));
  });

  app.post<{ Params: { id: string; choice: string } }>('/checkout/sandbox/:id/:choice', { schema: { hide: true } }, async (request, reply) => {
    const row = await checkoutOf(request.params.id);
    if (!row || row.processor !== 'sandbox') return notFound(reply, 'checkout');
    const types: Record<string, SandboxEventType | null> = { pay: 'payment.succeeded', fail: 'payment.failed', abandon: null };
    if (!Object.hasOwn(types, request.params.choice)) return notFound(reply, 'choice');
    const type = types[request.params.choice];
    if (type && row.status === 'pending') {
      const signed = processor.event(type, { topUpId: row.id, amountMinor: row.amountMinor, currency: row.currency }, ctx.clock.now());
      const delivered = await app.inject({ method: 'POST', url: '/webhooks/payments/sandbox', headers: signed.headers, payload: signed.body });
      if (delivered.statusCode !== 200) request.log.error({ status: delivered.statusCode, body: delivered.body }, 'sandbox payment webhook refused');
    }
    return returnTo(reply, row);
  });
};

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><link rel="stylesheet" href="/styles.css"></head>
<body><main class="checkout"><h1>${title}</h1>${body}</main></body></html>`;
}

export default sandboxCheckoutRoutes;
