import { and, asc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import { pgConstraint, pgErrorCode, type Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { purchasePresets } from './schema.ts';

/**
 * A customer's presets and favourites for the purchase form, kept server-side so they follow the
 * customer across browsers (docs/number-care.md). Area code and carrier are kept as given (opaque):
 * the purchase decides what they mean.
 */
export const MAX_PRESETS = 50;

export const PresetSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    service: z.string(),
    country: z.string(),
    area_code: z.string().nullable(),
    carrier: z.string().nullable(),
    favourite: z.boolean(),
    created_at: z.string(),
  })
  .meta({ id: 'Preset' });
export type PresetView = z.output<typeof PresetSchema>;

export const PresetFields = {
  name: z.string().trim().min(1).max(64),
  service: z.string().trim().min(1).max(64),
  country: z.string().regex(/^[A-Z]{2}$/, 'ISO 3166 alpha-2, upper case'),
  area_code: z.string().trim().min(1).max(16).nullable().optional(),
  carrier: z.string().trim().min(1).max(32).nullable().optional(),
  favourite: z.boolean().optional(),
};

type PresetRow = typeof purchasePresets.$inferSelect;

function viewOf(row: PresetRow): PresetView {
  return {
    id: row.id,
    name: row.name,
    service: row.service,
    country: row.country,
    area_code: row.areaCode,
    carrier: row.carrier,
    favourite: row.favourite,
    created_at: row.createdAt.toISOString(),
  };
}

/** Favourites first, then by name. */
export async function listPresets(ex: Executor, userId: string): Promise<PresetView[]> {
  const list = await ex
    .select()
    .from(purchasePresets)
    .where(eq(purchasePresets.userId, userId))
    .orderBy(sql`${purchasePresets.favourite} DESC`, asc(purchasePresets.name));
  return list.map(viewOf);
}

export interface PresetInput {
  name: string;
  service: string;
  country: string;
  area_code?: string | null;
  carrier?: string | null;
  favourite?: boolean;
}

export async function createPreset(ex: Executor, userId: string, input: PresetInput, now: Date): Promise<PresetView> {
  const [{ count } = { count: 0 }] = await ex
    .select({ count: sql<number>`count(*)::int` })
    .from(purchasePresets)
    .where(eq(purchasePresets.userId, userId));
  if (Number(count) >= MAX_PRESETS) throw new DomainError('validation_failed', `at most ${MAX_PRESETS} presets`);
  try {
    const [row] = await ex
      .insert(purchasePresets)
      .values({
        userId,
        name: input.name,
        service: input.service,
        country: input.country,
        areaCode: input.area_code ?? null,
        carrier: input.carrier ?? null,
        favourite: input.favourite ?? false,
        createdAt: now,
      })
      .returning();
    return viewOf(row!);
  } catch (error) {
    throw nameTaken(error, input.name);
  }
}

export async function updatePreset(ex: Executor, userId: string, id: string, input: Partial<PresetInput>): Promise<PresetView> {
  const set: Partial<typeof purchasePresets.$inferInsert> = {};
  if (input.name !== undefined) set.name = input.name;
  if (input.service !== undefined) set.service = input.service;
  if (input.country !== undefined) set.country = input.country;
  if (input.area_code !== undefined) set.areaCode = input.area_code;
  if (input.carrier !== undefined) set.carrier = input.carrier;
  if (input.favourite !== undefined) set.favourite = input.favourite;
  try {
    const [row] = await ex
      .update(purchasePresets)
      .set(set)
      .where(and(eq(purchasePresets.id, id), eq(purchasePresets.userId, userId)))
      .returning();
    if (!row) throw new DomainError('not_found', 'no such preset');
    return viewOf(row);
  } catch (error) {
    throw nameTaken(error, input.name ?? '');
  }
}

export async function deletePreset(ex: Executor, userId: string, id: string): Promise<void> {
  const [row] = await ex
    .delete(purchasePresets)
    .where(and(eq(purchasePresets.id, id), eq(purchasePresets.userId, userId)))
    .returning({ id: purchasePresets.id });
  if (!row) throw new DomainError('not_found', 'no such preset');
}

function nameTaken(error: unknown, name: string): unknown {
  if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'purchase_presets_name') {
    return new DomainError('validation_failed', `you already have a preset named "${name}"`);
  }
  return error;
}
