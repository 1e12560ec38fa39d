import { randomUUID } from 'node:crypto';
import { and, desc, eq, gt, inArray, isNull, or, sql } from 'drizzle-orm';
import { resolveToken } from '../accounts/credentials.ts';
import { API_KEY_PREFIX } from '../accounts/tokens.ts';
import { listOffers, type Offer } from '../catalogue/catalogue.ts';
import { services } from '../catalogue/schema.ts';
import type { Executor } from '../db/database.ts';
import { isDomainError } from '../errors.ts';
import { walletOf } from '../ledger/ledger.ts';
import { decimalToMinor, minorToDecimal } from '../money.ts';
import { requestAnotherCode } from '../verifications/another-code.ts';
import { cancelVerification } from '../verifications/flows.ts';
import { providerFor } from '../providers/set.ts';
import { parseIdempotencyKey } from '../verifications/idempotency.ts';
import type { LifecycleDeps, VerificationRow } from '../verifications/lifecycle.ts';
import { purchaseVerification } from '../verifications/purchase.ts';
import { AREA_CODE_PATTERN, CARRIER_PATTERN, MAX_CHOICES } from '../catalogue/number-options.ts';
import type { NumberOptions } from '../providers/provider.ts';
import { purchasingProviders } from '../verifications/failover.ts';
import { viewOf, viewsOf, type VerificationView } from '../verifications/resource.ts';
import { verifications } from '../verifications/schema.ts';
import { isRefunded } from '../verifications/transitions.ts';
import { activationIdOf, activationIdsOf, findActivation } from './activations.ts';
import { json, majorUnits, oneLine, ProtocolRefusal, protocolTime, text, tokenForDomainError, type ProtocolAnswer } from './answers.ts';
import {
  chooseCountry,
  codeForService,
  countryIdFor,
  countryNameFor,
  normaliseServiceCode,
  protocolCurrency,
  serviceForCode,
  type CountryChoice,
} from './codes.ts';

/**
 * The SMS-Activate `handler_api.php` protocol served to our customers (docs/sms-activate-api.md):
 * each action reads the protocol's parameters, calls the same purchase, cancel, ledger and view
 * functions as /v1, and words the outcome as the protocol does. Nothing here writes a
 * verification or money; holds, captures and releases happen exactly as through /v1.
 */
export interface ProtocolRequest {
  /** The protocol's parameters, query string and form body merged (the body wins, as in PHP). */
  params: Record<string, string>;
  /** The key sent in a header (X-Api-Key), for tools that keep it out of URLs. */
  apiKeyHeader?: string;
}

interface ActionContext {
  deps: LifecycleDeps;
  userId: string;
  param(name: string): string | undefined;
}

type Action = (ctx: ActionContext) => Promise<ProtocolAnswer>;

/**
 * The catalogue knows whether a service is offered, not how many numbers the upstream holds: every
 * offered service is shown with this count, so tools that skip a count of 0 try it, and NO_NUMBERS
 * at purchase is the real answer.
 */
export const OFFER_COUNT = 100;

/** At most this many activations in getActiveActivations (the protocol's lists are capped too). */
const ACTIVE_LIST_LIMIT = 100;

export async function answerRequest(deps: LifecycleDeps, request: ProtocolRequest): Promise<ProtocolAnswer> {
  const userId = await customerOf(deps, request.params.api_key || request.apiKeyHeader);
  if (!userId) return text('BAD_KEY');
  const action = ACTIONS.get(request.params.action ?? '');
  if (!action) return text('BAD_ACTION');
  const param = (name: string) => {
    const value = request.params[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  try {
    return await action({ deps, userId, param });
  } catch (error) {
    if (error instanceof ProtocolRefusal) return error.answer;
    const answer = isDomainError(error) ? tokenForDomainError(error.code, error.extra) : undefined;
    if (answer) return answer;
    throw error;
  }
}

/** The customer behind an API key; a session token, a revoked key or anything else is no one. */
async function customerOf(deps: LifecycleDeps, key: string | undefined): Promise<string | undefined> {
  if (!key?.startsWith(API_KEY_PREFIX)) return undefined;
  const credential = await resolveToken(deps.database.db, key, deps.clock.now());
  return credential?.principal.via === 'api_key' ? credential.principal.userId : undefined;
}

// ---- Money and purchases ------------------------------------------------------------------------

async function getBalance({ deps, userId }: ActionContext): Promise<ProtocolAnswer> {
  const wallet = await walletOf(deps.database.db, userId);
  // Held money is not the customer's to spend: only the available balance is shown.
  return text('ACCESS_BALANCE', minorToDecimal(wallet.availableMinor));
}

interface Bought {
  row: VerificationRow;
  activationId: number;
  countryId: string;
}

async function buy(ctx: ActionContext): Promise<Bought> {
  const { deps, userId, param } = ctx;
  const service = await offeredService(deps.database.db, purchasingProviders(deps), param('service'));
  if (!service) throw new ProtocolRefusal('BAD_SERVICE');
  const country = chosenCountry(param('country'), deps.config.DEFAULT_COUNTRY);
  const outcome = await purchaseVerification(deps, {
    userId,
    idempotencyKey: idempotencyKeyOf(param('idempotency_key')),
    service,
    country: country.iso,
    maxPriceMinor: maxPriceOf(param('maxPrice') ?? param('max_price')),
    options: numberOptionsOf(param('operator') ?? param('carriers'), param('areas')),
  });
  return { row: outcome.row, activationId: await activationIdOf(deps.database.db, outcome.row.id), countryId: country.id };
}

/**
 * The purchase's answer while the upstream has not said whether it happened (our 202): the price
 * stays held until recovery finds out, and the same idempotency_key answers ACCESS_NUMBER then.
 */
function pendingAnswer(bought: Bought): ProtocolAnswer | undefined {
  return bought.row.state === 'pending' ? text('PURCHASE_PENDING', bought.activationId) : undefined;
}

async function getNumber(ctx: ActionContext): Promise<ProtocolAnswer> {
  const bought = await buy(ctx);
  return pendingAnswer(bought) ?? text('ACCESS_NUMBER', bought.activationId, bought.row.phoneNumber!);
}

async function getNumberV2(ctx: ActionContext): Promise<ProtocolAnswer> {
  const bought = await buy(ctx);
  const { row } = bought;
  return (
    pendingAnswer(bought) ??
    json({
      activationId: bought.activationId,
      phoneNumber: row.phoneNumber,
      activationCost: majorUnits(row.priceMinor),
      currency: protocolCurrency(row.currency),
      countryCode: bought.countryId,
      canGetAnotherSms: Boolean(providerFor(ctx.deps, row.provider).anotherCode),
      activationTime: protocolTime(row.createdAt),
      activationEndTime: protocolTime(row.expiresAt),
      // The carriers asked for (the purchase fails rather than give another one the seller names).
      activationOperator: row.numberOptions?.carriers?.join(',') ?? 'any',
    })
  );
}

/**
 * `operator` (the protocol's carriers, comma-separated; `any` or empty for none) and DaisySMS's
 * `areas` (US area codes) and `carriers`. A name that cannot be one is WRONG_OPERATOR, as sellers answer.
 */
function numberOptionsOf(operator: string | undefined, areas: string | undefined): NumberOptions | undefined {
  const list = (raw: string | undefined) =>
    (raw ?? '')
      .split(',')
      .map((x) => x.trim().toLowerCase())
      .filter((x) => x !== '' && x !== 'any');
  const carriers = list(operator);
  const areaCodes = list(areas);
  if (carriers.length > MAX_CHOICES || carriers.some((c) => !CARRIER_PATTERN.test(c))) throw new ProtocolRefusal('WRONG_OPERATOR');
  if (areaCodes.length > MAX_CHOICES || areaCodes.some((a) => !AREA_CODE_PATTERN.test(a))) throw new ProtocolRefusal('BAD_AREA_CODE');
  if (carriers.length === 0 && areaCodes.length === 0) return undefined;
  return { ...(carriers.length > 0 ? { carriers } : {}), ...(areaCodes.length > 0 ? { areaCodes } : {}) };
}

/** Without a key every getNumber is a new purchase, as everywhere else the protocol is spoken. */
function idempotencyKeyOf(raw: string | undefined): string {
  if (raw === undefined) return `sms-activate:${randomUUID()}`;
  try {
    return parseIdempotencyKey(raw);
  } catch (error) {
    if (isDomainError(error)) throw new ProtocolRefusal('BAD_IDEMPOTENCY_KEY');
    throw error;
  }
}

/**
 * maxPrice in major units, rounded down (never more than the customer said). One we cannot read
 * caps at nothing, so the purchase is refused with the price that would buy.
 */
function maxPriceOf(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  return decimalToMinor(raw, { rounding: 'down' }) ?? 0;
}

// ---- One activation -----------------------------------------------------------------------------

async function activation(ctx: ActionContext): Promise<{ row: VerificationRow; activationId: number }> {
  const found = await findActivation(ctx.deps.database.db, ctx.userId, ctx.param('id'));
  if (found.kind === 'malformed') throw new ProtocolRefusal('WRONG_ACTIVATION_ID');
  if (found.kind === 'unknown') throw new ProtocolRefusal('NO_ACTIVATION');
  return found;
}

/** The message that was charged for (the first on time with the code), as the view shows it. */
function chargedMessage(view: VerificationView): VerificationView['messages'][number] | undefined {
  const onTime = view.messages.filter((m) => !m.late);
  return onTime.find((m) => m.code !== null && m.code === view.code) ?? onTime[0];
}

/**
 * An activation's latest additional code (setStatus 3), when one was asked for and not refused:
 * getStatus answers for it, as a seller does for the same activation id.
 */
async function latestAnotherCode(ex: Executor, root: VerificationRow): Promise<VerificationRow | undefined> {
  const [child] = await ex
    .select()
    .from(verifications)
    .where(and(eq(verifications.parentId, root.id), sql`${verifications.state} <> 'failed'`))
    .orderBy(desc(verifications.createdAt), desc(verifications.id))
    .limit(1);
  return child;
}

async function getStatus(ctx: ActionContext): Promise<ProtocolAnswer> {
  const { row: root } = await activation(ctx);
  const child = root.state === 'received' ? await latestAnotherCode(ctx.deps.database.db, root) : undefined;
  if (child && (child.state === 'waiting' || child.state === 'pending')) return text('STATUS_WAIT_RETRY', oneLine(root.code ?? ''));
  const row = child?.state === 'received' ? child : root;
  if (row.state === 'received') {
    const code = row.code ?? chargedMessage(await viewOf(ctx.deps.database.db, row))?.text ?? '';
    return text('STATUS_OK', oneLine(code));
  }
  return text(isRefunded(row.state) ? 'STATUS_CANCEL' : 'STATUS_WAIT_CODE');
}

async function getStatusV2(ctx: ActionContext): Promise<ProtocolAnswer> {
  const { row } = await activation(ctx);
  if (isRefunded(row.state)) return text('STATUS_CANCEL');
  const message = row.state === 'received' ? chargedMessage(await viewOf(ctx.deps.database.db, row)) : undefined;
  return json({
    verificationType: 0,
    sms: message ? { dateTime: protocolTime(new Date(message.received_at)), code: message.code, text: message.text } : null,
    call: null,
  });
}

/** setStatus values: 1 ready, 3 another SMS, 6 complete, 8 cancel (older documents: -1). */
const READY = '1';
const ANOTHER_SMS = '3';
const COMPLETE = '6';
const CANCELS = new Set(['8', '-1']);
const STATUSES = new Set([READY, ANOTHER_SMS, COMPLETE, ...CANCELS]);

async function setStatus(ctx: ActionContext): Promise<ProtocolAnswer> {
  const status = ctx.param('status');
  if (status === undefined || !STATUSES.has(status)) return text('BAD_STATUS');
  const { row } = await activation(ctx);
  if (CANCELS.has(status)) return cancel(ctx, row);
  if (status === ANOTHER_SMS) return anotherSms(ctx, row);
  if (isRefunded(row.state)) return text('STATUS_CANCEL');
  if (status === READY) return text('ACCESS_READY');
  // COMPLETE changes nothing here: the charge happened when the code arrived. Without a code,
  // the way to end an activation is a cancel, which releases the hold.
  return text(row.state === 'received' ? 'ACCESS_ACTIVATION' : 'BAD_STATUS');
}

/**
 * setStatus 3 through the same another-code flow as /v1 (POST /v1/verifications/{id}/another-code):
 * ACCESS_RETRY_GET once another SMS is awaited on the number (also when it already was: a retried
 * call changes nothing), BAD_STATUS when none is offered now (no code yet, window closed, the
 * upstream refused). Free where the upstream is free; getStatus then answers STATUS_WAIT_RETRY.
 */
async function anotherSms(ctx: ActionContext, row: VerificationRow): Promise<ProtocolAnswer> {
  if (row.state !== 'received') return text(isRefunded(row.state) ? 'STATUS_CANCEL' : 'BAD_STATUS');
  try {
    await requestAnotherCode(ctx.deps, { userId: ctx.userId, verificationId: row.id, idempotencyKey: `sms-activate:${randomUUID()}` });
    return text('ACCESS_RETRY_GET');
  } catch (error) {
    if (!isDomainError(error) || error.code !== 'invalid_state') throw error;
    const waiting = await latestAnotherCode(ctx.deps.database.db, row);
    return text(waiting && (waiting.state === 'waiting' || waiting.state === 'pending') ? 'ACCESS_RETRY_GET' : 'BAD_STATUS');
  }
}

/**
 * setStatus 8 through the same cancel as /v1: ACCESS_CANCEL once the hold is released (also for an
 * activation that already ended without a code), EARLY_CANCEL_DENIED while the upstream refuses
 * or the purchase is still being settled, OTP_RECEIVED once a code arrived: nothing is refunded
 * then, the customer has their code.
 */
async function cancel(ctx: ActionContext, row: VerificationRow): Promise<ProtocolAnswer> {
  if (row.state === 'pending') return text('EARLY_CANCEL_DENIED');
  const result = await cancelVerification(ctx.deps, row, 'customer');
  if (result.kind === 'too_early') return text('EARLY_CANCEL_DENIED');
  if (result.row.state === 'received') return text('OTP_RECEIVED');
  if (isRefunded(result.row.state)) return text('ACCESS_CANCEL');
  return text('EARLY_CANCEL_DENIED');
}

async function getActiveActivations({ deps, userId }: ActionContext): Promise<ProtocolAnswer> {
  const db = deps.database.db;
  // Active as the protocol means it: waiting for a code, or holding one until the window ends.
  const rows = await db
    .select()
    .from(verifications)
    .where(
      and(
        eq(verifications.userId, userId),
        // An additional code (setStatus 3) is part of its activation, not an activation of its own.
        isNull(verifications.parentId),
        or(eq(verifications.state, 'waiting'), and(eq(verifications.state, 'received'), gt(verifications.expiresAt, deps.clock.now()))),
      ),
    )
    .orderBy(desc(verifications.createdAt), desc(verifications.id))
    .limit(ACTIVE_LIST_LIMIT);
  if (rows.length === 0) return json({ status: 'error', error: 'NO_ACTIVATIONS' });
  const ids = await activationIdsOf(db, rows.map((r) => r.id));
  const views = await viewsOf(db, rows);
  return json({
    status: 'success',
    activeActivations: views.map((v) => {
      // Codes pair with texts by position, texts without a code last (as sellers list them).
      const onTime = v.messages.filter((m) => !m.late);
      const coded = onTime.filter((m) => m.code !== null);
      const messages = [...coded, ...onTime.filter((m) => m.code === null)];
      return {
        activationId: String(ids.get(v.id)),
        serviceCode: codeForService(v.service),
        phoneNumber: v.phone_number,
        activationCost: minorToDecimal(v.price_minor),
        currency: protocolCurrency(v.currency),
        activationStatus: messages.length > 0 ? '2' : '4',
        smsCode: coded.length > 0 ? coded.map((m) => m.code) : null,
        smsText: messages.length > 0 ? JSON.stringify(messages.map((m) => m.text)) : null,
        activationTime: protocolTime(new Date(v.created_at)),
        countryCode: countryIdFor(v.country),
        countryName: countryNameFor(v.country),
        canGetAnotherSms: '0',
      };
    }),
  });
}

// ---- The catalogue ------------------------------------------------------------------------------

/**
 * The catalogue service a protocol code names: a well-known code's service when it is offered,
 * else the one offered service whose name without underscores is the code. Offered means enabled
 * in some country; whether it is offered in the country asked for is the purchase's to say.
 */
async function offeredService(ex: Executor, providers: readonly string[], raw: string | undefined): Promise<string | undefined> {
  const code = normaliseServiceCode(raw ?? '');
  if (!/^[a-z0-9-]{1,64}$/.test(code)) return undefined;
  const known = serviceForCode(code);
  const found = await ex
    .selectDistinct({ service: services.service })
    .from(services)
    .where(
      and(
        inArray(services.provider, [...providers]),
        eq(services.enabled, true),
        or(known === undefined ? undefined : eq(services.service, known), sql`lower(replace(${services.service}, '_', '')) = ${code}`),
      ),
    );
  if (known !== undefined && found.some((f) => f.service === known)) return known;
  const named = found.filter((f) => normaliseServiceCode(f.service) === code);
  return named.length === 1 ? named[0]!.service : undefined;
}

function chosenCountry(raw: string | undefined, defaultIso: string): Exclude<CountryChoice, 'unknown'> {
  const country = chooseCountry(raw, defaultIso);
  if (country === 'unknown') throw new ProtocolRefusal('BAD_COUNTRY');
  return country;
}

/** Offers, of one country when the request names one (answers then key it by the id asked with). */
async function offersAsked(ctx: ActionContext): Promise<{ offers: Offer[]; countryId: (offer: Offer) => string }> {
  const { deps, param } = ctx;
  const raw = param('country');
  const country = raw === undefined ? undefined : chosenCountry(raw, deps.config.DEFAULT_COUNTRY);
  const offers = await listOffers(deps.database.db, purchasingProviders(deps), country?.iso);
  return { offers, countryId: (offer) => country?.id ?? countryIdFor(offer.country) };
}

async function getPrices(ctx: ActionContext): Promise<ProtocolAnswer> {
  const { deps, param } = ctx;
  let service: string | undefined;
  if (param('service') !== undefined) {
    service = await offeredService(deps.database.db, purchasingProviders(deps), param('service'));
    if (!service) return text('BAD_SERVICE');
  }
  const { offers, countryId } = await offersAsked(ctx);
  const prices: Record<string, Record<string, { cost: number; count: number }>> = {};
  for (const offer of offers) {
    if (service !== undefined && offer.service !== service) continue;
    (prices[countryId(offer)] ??= {})[codeForService(offer.service)] = { cost: majorUnits(offer.priceMinor), count: OFFER_COUNT };
  }
  return json(prices);
}

async function getNumbersStatus({ deps, param }: ActionContext): Promise<ProtocolAnswer> {
  const country = chosenCountry(param('country'), deps.config.DEFAULT_COUNTRY);
  const offers = await listOffers(deps.database.db, purchasingProviders(deps), country.iso);
  // `_0`: without call forwarding, the only kind sold here.
  return json(Object.fromEntries(offers.map((o) => [`${codeForService(o.service)}_0`, OFFER_COUNT])));
}

async function getCountries({ deps }: ActionContext): Promise<ProtocolAnswer> {
  const offers = await listOffers(deps.database.db, purchasingProviders(deps));
  const countries: Record<string, { id: number | string; eng: string; iso: string; visible: 1; retry: 0; rent: 0; multiService: 0 }> = {};
  for (const { country } of offers) {
    const id = countryIdFor(country);
    countries[id] ??= { id: /^\d+$/.test(id) ? Number(id) : id, eng: countryNameFor(country), iso: country, visible: 1, retry: 0, rent: 0, multiService: 0 };
  }
  return json(countries);
}

async function getServicesList(ctx: ActionContext): Promise<ProtocolAnswer> {
  const { offers } = await offersAsked(ctx);
  const names = new Map<string, string>();
  for (const offer of offers) if (!names.has(offer.service)) names.set(offer.service, offer.name);
  const list = [...names].map(([service, name]) => ({ code: codeForService(service), name }));
  list.sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
  return json({ status: 'success', services: list });
}

const ACTIONS: ReadonlyMap<string, Action> = new Map([
  ['getBalance', getBalance],
  // No cashback here: the balance is the whole answer.
  ['getBalanceAndCashBack', getBalance],
  ['getNumber', getNumber],
  ['getNumberV2', getNumberV2],
  ['getStatus', getStatus],
  ['getStatusV2', getStatusV2],
  ['setStatus', setStatus],
  ['getActiveActivations', getActiveActivations],
  ['getPrices', getPrices],
  ['getNumbersStatus', getNumbersStatus],
  ['getCountries', getCountries],
  ['getServicesList', getServicesList],
]);
