/** Errors the ledger raises; each names a rule the database itself enforces. */
export class LedgerError extends Error {
  constructor(
    readonly code: 'insufficient_funds' | 'hold_already_resolved' | 'idempotency_key_reused' | 'unknown_account' | 'unknown_hold',
    message: string,
  ) {
    super(message);
    this.name = 'LedgerError';
  }
}

export function isLedgerError(error: unknown, code?: LedgerError['code']): error is LedgerError {
  return error instanceof LedgerError && (code === undefined || error.code === code);
}
