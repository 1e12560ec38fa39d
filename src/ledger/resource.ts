import { z } from 'zod';
import { Timestamp } from '../clock.ts';
import { MinorUnits, type Minor } from '../money.ts';

/** The ledger's resources as the API and the CLI show them: schema (validation, OpenAPI) and the one mapping to it. */

export interface Wallet {
  accountId: string;
  currency: string;
  balanceMinor: Minor;
  heldMinor: Minor;
  availableMinor: Minor;
}

export type HistoryType = 'topup' | 'verification_hold' | 'verification_charge' | 'verification_refund' | 'adjustment';

export interface HistoryItem {
  id: string;
  type: HistoryType;
  /** Signed effect on the available balance (a charge only settles what its hold already reserved: 0). */
  amountMinor: number;
  /** The amount the entry is about (the charge's captured amount, the hold's reserved amount, ...). */
  grossMinor: number;
  verificationId: string | null;
  reason: string | null;
  createdAt: Date;
}

export const WalletSchema = z
  .object({
    balance_minor: MinorUnits.describe('posted balance'),
    held_minor: MinorUnits.describe('reserved by verifications still in progress'),
    available_minor: MinorUnits.describe('what can be spent: balance minus held'),
    currency: z.string().length(3),
  })
  .meta({ id: 'Wallet' });
export type WalletResource = z.output<typeof WalletSchema>;

export function walletResource(wallet: Wallet): WalletResource {
  return {
    balance_minor: wallet.balanceMinor,
    held_minor: wallet.heldMinor,
    available_minor: wallet.availableMinor,
    currency: wallet.currency,
  };
}

export const HistoryItemSchema = z
  .object({
    // Shaped like a UUID; a release's id is derived from its hold's (src/ledger/ledger.ts).
    id: z.guid(),
    type: z.enum(['topup', 'verification_hold', 'verification_charge', 'verification_refund', 'adjustment']),
    amount_minor: MinorUnits.describe('signed effect on the available balance'),
    gross_minor: MinorUnits.describe('the amount the entry is about'),
    verification_id: z.uuid().nullable(),
    reason: z.string().nullable(),
    created_at: Timestamp,
  })
  .meta({ id: 'WalletHistoryItem' });

export function historyItemResource(item: HistoryItem): z.output<typeof HistoryItemSchema> {
  return {
    id: item.id,
    type: item.type,
    amount_minor: item.amountMinor,
    gross_minor: item.grossMinor,
    verification_id: item.verificationId,
    reason: item.reason,
    created_at: item.createdAt.toISOString(),
  };
}
