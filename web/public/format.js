// Money and time formatting. Amounts travel as integer minor units (1234 = $12.34 in USD). They are
// turned into decimal *strings* by string operations only; no float arithmetic touches money.

const LOCALE = 'en-US';
const digitsCache = new Map();

/** Number of minor-unit digits of a currency (USD 2, JPY 0, KWD 3). */
export function currencyDigits(currency) {
  const code = String(currency || 'USD').toUpperCase();
  if (!digitsCache.has(code)) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat(LOCALE, { style: 'currency', currency: code }).resolvedOptions().maximumFractionDigits;
    } catch {
      digits = 2;
    }
    digitsCache.set(code, digits);
  }
  return digitsCache.get(code);
}

/** 1234 → "12.34", -5 → "-0.05", 0 → "0.00" (for a 2-digit currency). */
export function minorToDecimal(minor, currency = 'USD') {
  if (!Number.isSafeInteger(minor)) throw new RangeError(`not an integer amount of minor units: ${minor}`);
  const digits = currencyDigits(currency);
  const negative = minor < 0;
  const abs = String(Math.abs(minor));
  if (digits === 0) return (negative ? '-' : '') + abs;
  const padded = abs.padStart(digits + 1, '0');
  return `${negative ? '-' : ''}${padded.slice(0, -digits)}.${padded.slice(-digits)}`;
}

function groupThousands(intPart) {
  return intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * 1234, 'USD' → "$12.34"; -500 → "-$5.00"; with { signed: true } 500 → "+$5.00".
 * The decimal string is built exactly; Intl only supplies the currency symbol and its position.
 */
export function formatMoney(minor, currency = 'USD', options = {}) {
  if (minor === null || minor === undefined || !Number.isSafeInteger(Number(minor))) return '—';
  const value = Number(minor);
  const code = String(currency || 'USD').toUpperCase();
  const decimal = minorToDecimal(Math.abs(value), code);
  const [intPart, fracPart] = decimal.split('.');
  const number = groupThousands(intPart) + (fracPart !== undefined ? `.${fracPart}` : '');
  let symbol = code;
  let symbolFirst = true;
  try {
    const parts = new Intl.NumberFormat(LOCALE, { style: 'currency', currency: code }).formatToParts(1);
    const currencyPart = parts.find((p) => p.type === 'currency');
    if (currencyPart) symbol = currencyPart.value;
    symbolFirst = parts.findIndex((p) => p.type === 'currency') < parts.findIndex((p) => p.type === 'integer');
  } catch {
    symbolFirst = false;
  }
  const body = symbolFirst ? `${symbol}${number}` : `${number}\u00a0${symbol}`;
  let sign = '';
  if (value < 0) sign = '-';
  else if (options.signed && value > 0) sign = '+';
  return sign + body;
}

/**
 * Parse an amount typed in major units ("12.34", "-5", "1,000.50", "$3") into integer minor units
 * with string operations. Returns { ok: true, minor } or { ok: false, error }.
 */
export function parseMajorToMinor(input, currency = 'USD') {
  const digits = currencyDigits(currency);
  let text = String(input ?? '').trim().replace(/\s+/g, '');
  if (text === '') return { ok: false, error: 'Enter an amount.' };
  let sign = '';
  if (text[0] === '-' || text[0] === '+' || text[0] === '\u2212') {
    sign = text[0] === '+' ? '' : '-';
    text = text.slice(1);
  }
  text = text.replace(/^[$€£¥]/, '');
  if (/^\d{1,3}(,\d{3})+(\.\d*)?$/.test(text)) text = text.replace(/,/g, '');
  const match = /^(\d*)(?:\.(\d*))?$/.exec(text);
  if (!match || (match[1] === '' && (match[2] === undefined || match[2] === ''))) {
    return { ok: false, error: 'Enter a number like 12.50 (use a minus sign to adjust down).' };
  }
  const intPart = match[1] || '0';
  const fracPart = match[2] ?? '';
  if (fracPart.length > digits) {
    return { ok: false, error: digits === 0 ? 'This currency has no decimal places.' : `Use at most ${digits} decimal places.` };
  }
  const minorDigits = (intPart + fracPart.padEnd(digits, '0')).replace(/^0+(?=\d)/, '');
  if (minorDigits.length > 15) return { ok: false, error: 'That amount is too large.' };
  const minor = Number(sign + minorDigits);
  if (!Number.isSafeInteger(minor)) return { ok: false, error: 'That amount is too large.' };
  if (minor === 0) return { ok: false, error: 'The amount must not be zero.' };
  return { ok: true, minor: Object.is(minor, -0) ? 0 : minor };
}

const dateTimeFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: 'medium', timeStyle: 'short' });
const timeFormat = new Intl.DateTimeFormat(LOCALE, { hour: 'numeric', minute: '2-digit', second: '2-digit' });

export function formatDateTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTimeFormat.format(d);
}

export function formatTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : timeFormat.format(d);
}

/** 75_000 → "1:15", 3_725_000 → "1:02:05". Negative → "0:00". */
export function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

/** A human "in 25 s" / "in 3 min" for Retry-After style waits. */
export function formatWait(seconds) {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 90) return `${s} s`;
  return `${Math.ceil(s / 60)} min`;
}

let regionNames = null;
export function countryName(code) {
  if (!code) return '';
  try {
    regionNames ??= new Intl.DisplayNames([LOCALE], { type: 'region' });
    return regionNames.of(String(code).toUpperCase()) ?? code;
  } catch {
    return code;
  }
}

/** "14155550123" → "+1 415 555 0123"; other numbers → "+<digits>". */
export function formatPhone(number) {
  if (!number) return '';
  const digits = String(number).replace(/[^\d]/g, '');
  if (digits.length === 11 && digits.startsWith('1')) {
    return `+1 ${digits.slice(1, 4)} ${digits.slice(4, 7)} ${digits.slice(7)}`;
  }
  return `+${digits}`;
}

/** The form people paste into a sign-up screen: "+14155550123". */
export function phoneForCopy(number) {
  if (!number) return '';
  return `+${String(number).replace(/[^\d]/g, '')}`;
}

export const STATE_LABELS = {
  pending: 'Getting a number…',
  waiting: 'Waiting for SMS',
  received: 'Code received',
  cancelled: 'Cancelled',
  expired: 'Expired',
  failed: 'Failed',
};

export const TERMINAL_STATES = new Set(['received', 'cancelled', 'expired', 'failed']);

export const TRANSACTION_LABELS = {
  topup: 'Top-up',
  verification_hold: 'Hold for a number',
  verification_charge: 'Charge — code received',
  verification_refund: 'Refund',
  adjustment: 'Adjustment',
};
