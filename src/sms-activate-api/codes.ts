/**
 * The SMS-Activate protocol's own names for services, countries and currencies, as data. Tools
 * written for the protocol send `service=wa` and `country=12`; the catalogue speaks `whatsapp` and
 * `US`. A service missing from the table answers to its catalogue name with the underscores
 * removed (`test_success` → `testsuccess`), a country to its ISO 3166 alpha-2 code.
 */

/** Well-known short codes of the protocol → the catalogue's service names. */
export const SERVICE_CODES: Readonly<Record<string, string>> = {
  wa: 'whatsapp',
  tg: 'telegram',
  go: 'google',
  fb: 'facebook',
  ig: 'instagram',
  tw: 'twitter',
  ds: 'discord',
  mm: 'microsoft',
  am: 'amazon',
  ub: 'uber',
  lf: 'tiktok',
  vi: 'viber',
  vk: 'vk',
  ok: 'odnoklassniki',
  wb: 'wechat',
  oi: 'tinder',
  ts: 'paypal',
  nf: 'netflix',
  tn: 'linkedin',
  mt: 'steam',
  bw: 'signal',
  dh: 'ebay',
  ya: 'yandex',
  ma: 'mailru',
  av: 'avito',
  kt: 'kakaotalk',
  me: 'line',
  fu: 'snapchat',
};

export interface ProtocolCountry {
  /** The protocol's numeric country id. */
  id: number;
  /** ISO 3166 alpha-2, as the catalogue stores countries. */
  iso: string;
  name: string;
}

/**
 * The protocol's country ids. Several ids may name one country (the USA has two); the first one
 * listed for a country is the id our answers use unless the customer asked with another.
 */
export const COUNTRIES: readonly ProtocolCountry[] = [
  { id: 0, iso: 'RU', name: 'Russia' },
  { id: 1, iso: 'UA', name: 'Ukraine' },
  { id: 2, iso: 'KZ', name: 'Kazakhstan' },
  { id: 3, iso: 'CN', name: 'China' },
  { id: 4, iso: 'PH', name: 'Philippines' },
  { id: 6, iso: 'ID', name: 'Indonesia' },
  { id: 7, iso: 'MY', name: 'Malaysia' },
  { id: 8, iso: 'KE', name: 'Kenya' },
  { id: 10, iso: 'VN', name: 'Vietnam' },
  { id: 11, iso: 'KG', name: 'Kyrgyzstan' },
  { id: 12, iso: 'US', name: 'USA' },
  { id: 13, iso: 'IL', name: 'Israel' },
  { id: 14, iso: 'HK', name: 'Hong Kong' },
  { id: 15, iso: 'PL', name: 'Poland' },
  { id: 16, iso: 'GB', name: 'United Kingdom' },
  { id: 19, iso: 'NG', name: 'Nigeria' },
  { id: 21, iso: 'EG', name: 'Egypt' },
  { id: 22, iso: 'IN', name: 'India' },
  { id: 23, iso: 'IE', name: 'Ireland' },
  { id: 31, iso: 'ZA', name: 'South Africa' },
  { id: 32, iso: 'RO', name: 'Romania' },
  { id: 33, iso: 'CO', name: 'Colombia' },
  { id: 34, iso: 'EE', name: 'Estonia' },
  { id: 36, iso: 'CA', name: 'Canada' },
  { id: 37, iso: 'MA', name: 'Morocco' },
  { id: 39, iso: 'AR', name: 'Argentina' },
  { id: 40, iso: 'UZ', name: 'Uzbekistan' },
  { id: 43, iso: 'DE', name: 'Germany' },
  { id: 44, iso: 'LT', name: 'Lithuania' },
  { id: 46, iso: 'SE', name: 'Sweden' },
  { id: 48, iso: 'NL', name: 'Netherlands' },
  { id: 49, iso: 'LV', name: 'Latvia' },
  { id: 50, iso: 'AT', name: 'Austria' },
  { id: 52, iso: 'TH', name: 'Thailand' },
  { id: 53, iso: 'SA', name: 'Saudi Arabia' },
  { id: 54, iso: 'MX', name: 'Mexico' },
  { id: 56, iso: 'ES', name: 'Spain' },
  { id: 62, iso: 'TR', name: 'Turkey' },
  { id: 63, iso: 'CZ', name: 'Czech Republic' },
  { id: 66, iso: 'PK', name: 'Pakistan' },
  { id: 73, iso: 'BR', name: 'Brazil' },
  { id: 78, iso: 'FR', name: 'France' },
  { id: 82, iso: 'BE', name: 'Belgium' },
  { id: 83, iso: 'BG', name: 'Bulgaria' },
  { id: 84, iso: 'HU', name: 'Hungary' },
  { id: 86, iso: 'IT', name: 'Italy' },
  { id: 117, iso: 'PT', name: 'Portugal' },
  { id: 129, iso: 'GR', name: 'Greece' },
  { id: 163, iso: 'FI', name: 'Finland' },
  { id: 172, iso: 'DK', name: 'Denmark' },
  { id: 173, iso: 'CH', name: 'Switzerland' },
  { id: 174, iso: 'NO', name: 'Norway' },
  { id: 175, iso: 'AU', name: 'Australia' },
  { id: 182, iso: 'JP', name: 'Japan' },
  { id: 187, iso: 'US', name: 'USA (virtual)' },
];

/** ISO 4217 numeric codes: getNumberV2 and the active list state the currency as a number (840). */
export const NUMERIC_CURRENCIES: Readonly<Record<string, number>> = {
  USD: 840,
  EUR: 978,
  GBP: 826,
  RUB: 643,
  INR: 356,
  CNY: 156,
  UAH: 980,
  IDR: 360,
  BRL: 986,
  CAD: 124,
  AUD: 36,
  JPY: 392,
  CHF: 756,
  PLN: 985,
  TRY: 949,
};

const codeByService = new Map(Object.entries(SERVICE_CODES).map(([code, service]) => [service, code]));
const countryById = new Map(COUNTRIES.map((c) => [c.id, c]));
const firstIdByIso = new Map<string, number>();
for (const c of COUNTRIES) if (!firstIdByIso.has(c.iso)) firstIdByIso.set(c.iso, c.id);

/** How a customer's service code is compared with catalogue names: lower case, no underscores. */
export function normaliseServiceCode(code: string): string {
  return code.toLowerCase().replaceAll('_', '');
}

/** The catalogue name a well-known code stands for, if it is one. */
export function serviceForCode(code: string): string | undefined {
  return SERVICE_CODES[normaliseServiceCode(code)];
}

/** The protocol's code for a catalogue service. */
export function codeForService(service: string): string {
  return codeByService.get(service) ?? normaliseServiceCode(service);
}

export type CountryChoice = { iso: string; id: string } | 'unknown';

/**
 * A `country` parameter: a numeric id of the table (kept as asked, so answers echo it) or an
 * ISO 3166 alpha-2 code in either case; absent or empty means the installation's default.
 */
export function chooseCountry(raw: string | undefined, defaultIso: string): CountryChoice {
  const value = raw?.trim() ?? '';
  if (value === '') return { iso: defaultIso, id: countryIdFor(defaultIso) };
  if (/^\d{1,4}$/.test(value)) {
    const known = countryById.get(Number(value));
    return known ? { iso: known.iso, id: String(known.id) } : 'unknown';
  }
  if (/^[A-Za-z]{2}$/.test(value)) {
    const iso = value.toUpperCase();
    return { iso, id: countryIdFor(iso) };
  }
  return 'unknown';
}

/** The id our answers give a catalogue country: its first protocol id, else its ISO code. */
export function countryIdFor(iso: string): string {
  const id = firstIdByIso.get(iso);
  return id === undefined ? iso : String(id);
}

export function countryNameFor(iso: string): string {
  const id = firstIdByIso.get(iso);
  return (id === undefined ? undefined : countryById.get(id)?.name) ?? iso;
}

/** The currency as the protocol states it: ISO 4217 numeric when known, else the alphabetic code. */
export function protocolCurrency(currency: string): number | string {
  return NUMERIC_CURRENCIES[currency] ?? currency;
}
