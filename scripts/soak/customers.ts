import { sleep } from '../../bench/support/stats.ts';
import { namedVerification, problemCode, send, type Answer, type AnswerBase, type CancelAnswer, type PurchaseAnswer, type PurchaseVariant, type SmsAnswer } from './answers.ts';
import type { Fleet } from './fleet.ts';
import type { Random } from './random.ts';

/**
 * The customers: scripts buying numbers through the API processes, as API users do, with every
 * answer written to the journal. Each purchase is one scenario of the sandbox upstream (ordinary
 * services deliver after a random delay or never; test_* services are the deterministic faults),
 * sometimes sent as concurrent identical copies, and followed, some seconds later, by concurrent
 * cancels, an identical replay, a replay with a different body, or a hand-delivered SMS just before
 * or just after the deadline.
 */
export interface SoakCustomer {
  userId: string;
  apiKey: string;
  fundedMinor: number;
  poor: boolean;
}

const ordinaryServices = ['whatsapp', 'telegram', 'google', 'facebook', 'instagram', 'tiktok', 'discord', 'microsoft', 'amazon', 'uber'];

/** Shares of the purchases, by scenario. */
export const scenarioWeights = {
  ordinary: 34,
  test_success: 14,
  test_delayed: 8,
  test_timeout: 12,
  test_late: 8,
  test_ambiguous: 8,
  test_no_numbers: 5,
  test_provider_error: 3,
  unknown_service: 1,
  over_max_price: 1,
} as const;

/** How often a purchase is followed by each extra, and the share of purchases by poor customers. */
const odds = {
  poorCustomer: 0.1,
  duplicates: 0.12,
  cancel: 0.2,
  laterReplay: 0.1,
  mismatch: 0.03,
  manualSms: 0.15,
  refusedReplay: 0.05,
};

interface PurchaseBody {
  service: string;
  max_price_minor?: number;
}

/** Answers meaning "not bought, nothing stored": the oracle expects no row for such a key. */
export function isRefusal(answer: Pick<PurchaseAnswer, 'status' | 'verificationId'>): boolean {
  return answer.verificationId === undefined && typeof answer.status === 'number' && [400, 402, 422, 429, 503].includes(answer.status);
}

export class CustomerLoad {
  readonly journal: Answer[] = [];
  /** Verifications named by purchase answers (the soak's count of verifications bought). */
  readonly bought = new Set<string>();
  private readonly followUps = new Set<Promise<void>>();
  private readonly rich: SoakCustomer[];
  private readonly poor: SoakCustomer[];
  private sequence = 0;
  private cancelGroups = 0;

  constructor(
    private readonly fleet: Fleet,
    customers: SoakCustomer[],
    private readonly random: Random,
  ) {
    this.rich = customers.filter((c) => !c.poor);
    this.poor = customers.filter((c) => c.poor);
  }

  /** Runs `concurrency` customer loops until told to stop; follow-ups already scheduled keep running. */
  async run(concurrency: number, stop: () => boolean): Promise<void> {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (!stop()) await this.buyOnce();
      }),
    );
  }

  /** Waits for every scheduled cancel, replay and SMS to be sent and answered. */
  async settle(): Promise<void> {
    while (this.followUps.size > 0) await Promise.all([...this.followUps]);
  }

  async purchase(customer: SoakCustomer, key: string, body: PurchaseBody, variant: PurchaseVariant): Promise<PurchaseAnswer> {
    const { base, expiresAt } = await this.ask(customer, '/v1/verifications', { idempotencyKey: key, body });
    const answer: PurchaseAnswer = { kind: 'purchase', ...base, key, service: body.service, variant, expiresAt };
    this.journal.push(answer);
    if (answer.verificationId && variant !== 'mismatch') this.bought.add(answer.verificationId);
    return answer;
  }

  async cancel(customer: SoakCustomer, verificationId: string, group: number): Promise<CancelAnswer> {
    const { base } = await this.ask(customer, `/v1/verifications/${verificationId}/cancel`, {});
    const answer: CancelAnswer = { kind: 'cancel', ...base, verificationId, group };
    this.journal.push(answer);
    return answer;
  }

  /** Delivers an SMS by hand through the sandbox's route, as the upstream would. */
  async deliverSms(customer: SoakCustomer, verificationId: string, expiresAt: number): Promise<SmsAnswer> {
    const text = `Your verification code is ${this.random.int(100_000, 999_999)}`;
    const { base } = await this.ask(customer, '/v1/sandbox/sms', { body: { verification_id: verificationId, text } });
    const answer: SmsAnswer = { kind: 'sms', ...base, verificationId, expiresAt };
    this.journal.push(answer);
    return answer;
  }

  /** One POST to an API process answering now, described as the journal records it. */
  private async ask(customer: SoakCustomer, path: string, options: { idempotencyKey?: string; body?: unknown }) {
    const api = await this.fleet.api(this.random);
    const sentAt = Date.now();
    const result = await send(api, 'POST', path, { apiKey: customer.apiKey, ...options });
    const named = namedVerification(result.body);
    const base: AnswerBase = {
      userId: customer.userId,
      sentAt,
      doneAt: Date.now(),
      status: result.status,
      code: problemCode(result),
      verificationId: named.id,
      state: named.state,
    };
    return { base, expiresAt: named.expiresAt };
  }

  private later(ms: number, work: () => Promise<unknown>): void {
    const task = sleep(Math.max(0, ms))
      .then(work)
      .then(
        () => undefined,
        () => undefined,
      );
    this.followUps.add(task);
    void task.then(() => this.followUps.delete(task));
  }

  private async buyOnce(): Promise<void> {
    const { random } = this;
    const customer = this.poor.length > 0 && random.chance(odds.poorCustomer) ? random.pick(this.poor) : random.pick(this.rich);
    const scenario = random.weighted(scenarioWeights);
    const body: PurchaseBody =
      scenario === 'ordinary'
        ? { service: random.pick(ordinaryServices) }
        : scenario === 'unknown_service'
          ? { service: 'no_such_service' }
          : scenario === 'over_max_price'
            ? { service: random.pick(ordinaryServices), max_price_minor: 1 }
            : { service: scenario };
    const key = `soak-${++this.sequence}`;
    const copies = random.chance(odds.duplicates) ? random.int(2, 3) : 1;
    const answers = await Promise.all(
      Array.from({ length: copies }, (_, i) => this.purchase(customer, key, body, i === 0 ? 'first' : 'duplicate')),
    );

    const made = answers.find((a) => (a.status === 201 || a.status === 202) && a.verificationId);
    // A script told to slow down (429) waits a little before its next purchase, as Retry-After asks.
    if (answers.every((a) => a.status === 429)) await sleep(random.between(200, 1_000));
    if (!made) {
      if (answers.every(isRefusal) && random.chance(odds.refusedReplay)) {
        this.later(random.between(1_000, 10_000), () => this.purchase(customer, key, body, 'later'));
      }
      return;
    }
    const id = made.verificationId!;
    if (random.chance(odds.cancel)) {
      const group = ++this.cancelGroups;
      const size = random.chance(0.4) ? 1 : random.int(2, 4);
      this.later(random.between(0, 4_000), () => Promise.all(Array.from({ length: size }, () => this.cancel(customer, id, group))));
    }
    if (random.chance(odds.laterReplay)) this.later(random.between(2_000, 25_000), () => this.purchase(customer, key, body, 'later'));
    if (random.chance(odds.mismatch)) {
      const other = { service: body.service === 'test_success' ? 'test_delayed' : 'test_success' };
      this.later(random.between(1_000, 10_000), () => this.purchase(customer, key, other, 'mismatch'));
    }
    if (body.service === 'test_timeout' && made.expiresAt !== undefined && random.chance(odds.manualSms)) {
      // Just before the deadline (to be charged) or just after it (never to be charged).
      const at = random.chance(0.5) ? made.expiresAt - random.between(1_500, 5_000) : made.expiresAt + random.between(1_000, 4_000);
      const expiresAt = made.expiresAt;
      this.later(at - Date.now(), () => this.deliverSms(customer, id, expiresAt));
    }
  }
}
