import { sleep } from '../../bench/support/stats.ts';
import type { CustomerLoad, SoakCustomer } from './customers.ts';
import type { Fleet } from './fleet.ts';

/**
 * Late SMS with no engine running: every engine is killed (the API processes keep serving), a
 * customer of its own buys `size` test_late and `size` test_timeout verifications, the soak waits
 * until six seconds after the last deadline (test_late's SMS arrives upstream five seconds after
 * it), delivers an SMS by hand to each test_timeout one, and starts the engines again. Every one of
 * those SMS arrived after its deadline: none may be charged, every verification must end expired,
 * and the customer's wallet must end where it started.
 */
export interface BlackoutReport {
  index: number;
  /** From the engines' kill to their restart. */
  started_at: string;
  ended_at: string;
  customer: string;
  funded_minor: number;
  engines_killed: number;
  bought: number;
  sms_after_deadline: number;
  /** Hand-delivered SMS whose answer showed the verification received (charged). */
  sms_answered_received: number;
  seconds: number;
  /** The customer's posted balance once the run has drained: funded_minor when nothing was charged. */
  final_posted_minor?: number;
}

export async function engineBlackout(fleet: Fleet, load: CustomerLoad, customer: SoakCustomer, index: number, size: number): Promise<BlackoutReport> {
  const started = Date.now();
  const killed = await fleet.killEngines();
  const bought: { id: string; service: string; expiresAt: number }[] = [];
  for (const service of ['test_late', 'test_timeout']) {
    for (let i = 0; i < size; i++) {
      const answer = await load.purchase(customer, `blackout-${index}-${service}-${i}`, { service }, 'first');
      if (answer.status === 201 && answer.verificationId && answer.expiresAt !== undefined) {
        bought.push({ id: answer.verificationId, service, expiresAt: answer.expiresAt });
      }
    }
  }
  const lastDeadline = Math.max(Date.now(), ...bought.map((b) => b.expiresAt));
  await sleep(lastDeadline + 6_000 - Date.now());
  let answeredReceived = 0;
  const late = bought.filter((b) => b.service === 'test_timeout');
  for (const b of late) {
    const answer = await load.deliverSms(customer, b.id, b.expiresAt);
    if (answer.state === 'received') answeredReceived++;
  }
  await fleet.releaseEngines();
  return {
    index,
    started_at: new Date(started).toISOString(),
    ended_at: new Date().toISOString(),
    customer: customer.userId,
    funded_minor: customer.fundedMinor,
    engines_killed: killed.length,
    bought: bought.length,
    sms_after_deadline: late.length,
    sms_answered_received: answeredReceived,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
}
