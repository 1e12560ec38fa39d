import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createPreset, deletePreset, listPresets, PresetFields, PresetSchema, updatePreset } from '../../accounts/presets.ts';
import { lowBalanceThreshold, setLowBalanceThreshold } from '../../notifications/low-balance.ts';
import { MinorUnits } from '../../money.ts';
import { requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';

const Params = z.strictObject({ id: z.uuid() });
const LowBalanceSchema = z
  .object({ threshold_minor: MinorUnits.nullable().describe('notify when the available balance goes below this; null: never') })
  .meta({ id: 'LowBalanceSetting' });

/** The customer's purchase presets and favourites, and their low-balance threshold (docs/number-care.md). */
const presetRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;

  app.get('/v1/presets', {
    preValidation: requireUser,
    schema: {
      operationId: 'listPresets',
      tags: ['account'],
      summary: 'Your purchase presets, favourites first',
      security: Security,
      response: { 200: z.object({ items: z.array(PresetSchema) }), ...problemResponses(401) },
      answers: { 200: { description: 'Every preset of yours' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      return { items: await listPresets(ctx.database.db, me.userId) };
    },
  });

  app.post('/v1/presets', {
    preValidation: requireUser,
    schema: {
      operationId: 'createPreset',
      tags: ['account'],
      summary: 'Save a purchase preset (service, country, optional area code and carrier)',
      security: Security,
      body: z.strictObject(PresetFields),
      response: { 201: PresetSchema, ...problemResponses(400, 401, 403) },
      answers: { 201: { description: 'The saved preset' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      return reply.status(201).send(await createPreset(ctx.database.db, me.userId, request.body, ctx.clock.now()));
    },
  });

  app.patch('/v1/presets/:id', {
    preValidation: requireUser,
    schema: {
      operationId: 'updatePreset',
      tags: ['account'],
      summary: 'Change a preset, e.g. mark it a favourite',
      security: Security,
      params: Params,
      body: z
        .strictObject({
          name: PresetFields.name.optional(),
          service: PresetFields.service.optional(),
          country: PresetFields.country.optional(),
          area_code: PresetFields.area_code,
          carrier: PresetFields.carrier,
          favourite: PresetFields.favourite,
        })
        .refine((b) => Object.keys(b).length > 0, 'name at least one field to change'),
      response: { 200: PresetSchema, ...problemResponses(400, 401, 403, 404) },
      answers: { 200: { description: 'The preset as changed' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      return updatePreset(ctx.database.db, me.userId, request.params.id, request.body);
    },
  });

  app.delete('/v1/presets/:id', {
    preValidation: requireUser,
    schema: {
      operationId: 'deletePreset',
      tags: ['account'],
      summary: 'Delete a preset',
      security: Security,
      params: Params,
      response: { 204: z.undefined(), ...problemResponses(400, 401, 403, 404) },
      answers: { 204: { description: 'Deleted' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      await deletePreset(ctx.database.db, me.userId, request.params.id);
      return reply.status(204).send();
    },
  });

  app.get('/v1/account/low-balance', {
    preValidation: requireUser,
    schema: {
      operationId: 'getLowBalanceSetting',
      tags: ['account'],
      summary: 'Your low-balance threshold',
      security: Security,
      response: { 200: LowBalanceSchema, ...problemResponses(401) },
      answers: { 200: { description: 'The threshold, or null when none is set' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      return { threshold_minor: await lowBalanceThreshold(ctx.database.db, me.userId) };
    },
  });

  app.put('/v1/account/low-balance', {
    preValidation: requireUser,
    schema: {
      operationId: 'setLowBalanceSetting',
      tags: ['account'],
      summary: 'Set (or clear with null) your low-balance threshold',
      description:
        'When your available balance goes below the threshold you get one notification (and the `wallet.low_balance` webhook event); ' +
        'the next one only after it has come back to the threshold or above and gone below again.',
      security: Security,
      body: z.strictObject({ threshold_minor: z.number().int().positive().max(100_000_000).nullable() }),
      response: { 200: LowBalanceSchema, ...problemResponses(400, 401, 403) },
      answers: { 200: { description: 'The threshold as set' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      await setLowBalanceThreshold(ctx.database.db, me.userId, request.body.threshold_minor, ctx.clock.now());
      return { threshold_minor: request.body.threshold_minor };
    },
  });
};

export default presetRoutes;
