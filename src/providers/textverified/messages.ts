/**
 * One identity for a TextVerified SMS, whichever path brought it. The SMS list gives each message
 * an `id`; the `v2.sms.received` webhook does not (its schema forbids extra fields). Both carry the
 * number, the time and the text, so the message id is a digest of those: the poller and the webhook
 * store the same SMS once.
 */
import { createHash } from 'node:crypto';
import type { ProviderMessage } from '../provider.ts';
import { normaliseUsNumber } from './schemas.ts';

export interface TextVerifiedSms {
  to: string;
  createdAt: Date;
  smsContent: string | null;
  parsedCode: string | null;
}

export function messageFromSms(sms: TextVerifiedSms): ProviderMessage {
  return { providerMessageId: smsIdentity(sms), text: sms.smsContent ?? '', code: sms.parsedCode ?? null, receivedAt: sms.createdAt };
}

/**
 * Whole seconds: the two paths may print the same instant with different fractional digits, and two
 * different messages with the same text to the same number in the same second are the same code.
 */
function smsIdentity(sms: TextVerifiedSms): string {
  const to = normaliseUsNumber(sms.to) ?? sms.to.trim();
  const second = Math.floor(sms.createdAt.getTime() / 1000);
  const digest = createHash('sha256').update(`${to}\n${second}\n${sms.smsContent ?? ''}`).digest('hex');
  return `tv-${digest.slice(0, 32)}`;
}

export interface TextVerifiedCall {
  id: string;
  from?: string | null;
  createdAt: Date;
  recordingUri: string | null;
}

/**
 * A voice verification's call, as a message. TextVerified's `Call` carries no transcription and no
 * parsed code (its published document lists `id`, `from`, `to`, `createdAt`, `recordingUri` and
 * forbids other fields), so what reaches the customer is the recording, where the code is spoken:
 * the message's text names it and `code` stays null (digits read from a link would be no code).
 * A call without a recording delivered nothing the customer can use: it is no message, so it is
 * never charged. Calls reach us only through the list (no webhook event exists for them), so the
 * list's own id is the identity: polling the same call again stores nothing new.
 */
export function messageFromCall(call: TextVerifiedCall): ProviderMessage | null {
  const recording = call.recordingUri?.trim();
  if (!recording) return null;
  const from = call.from?.trim();
  return {
    providerMessageId: `tv-call-${call.id}`,
    text: `Voice call${from ? ` from ${from}` : ''}; the code is spoken in the recording: ${recording}`,
    code: null,
    receivedAt: call.createdAt,
  };
}
