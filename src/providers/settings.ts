/**
 * Which upstreams are configured and with what: PROVIDERS (or PROVIDER, a list of one) names them
 * in order of preference; each name's settings come from PROVIDER_<NAME>_<SETTING> variables, with
 * the single-provider variables (TEXTVERIFIED_*, SMS_ACTIVATE_*, PROVIDER_REQUESTS_PER_SECOND,
 * PROVIDER_TIMEOUT_MS) as the fallbacks they always were. A name that cannot be built stops the
 * start with a ConfigError naming the variable to set. Pure: reads the parsed configuration only.
 */
import { ConfigError, type Config } from '../config.ts';
import type { ProviderCapabilities, ProviderKind, ProviderName } from './provider.ts';
import { SANDBOX_SURCHARGES } from './sandbox.ts';
import { SELLER_PROFILES, sellerProfileFor, type SellerProfile } from './sms-activate/sellers.ts';

export const SMS_ACTIVATE_DEFAULT_URL = 'https://api.sms-activate.ae/stubs/handler_api.php';

/** The configured upstreams, in order of preference (PROVIDERS, else PROVIDER alone). */
export function configuredProviders(config: Pick<Config, 'PROVIDER' | 'PROVIDERS'>): ProviderName[] {
  return config.PROVIDERS ? config.PROVIDERS.split(',') : [config.PROVIDER];
}

/** The environment variable of one setting of one provider: PROVIDER_DAISYSMS_API_KEY. */
export function providerVariable(name: ProviderName, setting: string): string {
  return `PROVIDER_${name.toUpperCase().replace(/-/g, '_')}_${setting}`;
}

export interface UpstreamSettings {
  name: ProviderName;
  kind: ProviderKind;
  baseUrl: string;
  apiKey: string;
  /** TextVerified: the account e-mail. */
  apiUsername?: string;
  webhookSecret?: string;
  requestsPerSecond?: number;
  timeoutMs: number;
  /** SMS-Activate protocol: the seller account's currency when the operator states it. */
  sellerCurrency?: string;
  countryCodes?: Record<string, string>;
  serviceCodes?: Record<string, string>;
  /** SMS-Activate protocol: what this seller does differently (docs/providers.md). */
  seller?: SellerProfile;
  /**
   * What this upstream adds to its price for each option (minor units): PROVIDER_<NAME>_*_SURCHARGE_MINOR,
   * else the global AREA_CODE_/CARRIER_/VOICE_SURCHARGE_MINOR. The sandbox keeps its own (10, 10, 20)
   * unless its PROVIDER_SANDBOX_* variables say otherwise.
   */
  surcharges: Surcharges;
}

export type Surcharges = ProviderCapabilities['surcharge'];

/** A provider's surcharges: its own variables, each falling back to `fallback`. */
function surchargesOf(config: Config, name: ProviderName, fallback: Surcharges): Surcharges {
  const own = (setting: string) => numberSetting(name, setting, config.providerSettings[providerVariable(name, setting)], { min: 0, max: 1_000_000, whole: true });
  return {
    areaCodeMinor: own('AREA_CODE_SURCHARGE_MINOR') ?? fallback.areaCodeMinor,
    carrierMinor: own('CARRIER_SURCHARGE_MINOR') ?? fallback.carrierMinor,
    voiceMinor: own('VOICE_SURCHARGE_MINOR') ?? fallback.voiceMinor,
  };
}

function globalSurcharges(config: Config): Surcharges {
  return { areaCodeMinor: config.AREA_CODE_SURCHARGE_MINOR, carrierMinor: config.CARRIER_SURCHARGE_MINOR, voiceMinor: config.VOICE_SURCHARGE_MINOR };
}

/** The protocol a name speaks: PROVIDER_<NAME>_PROTOCOL, else what the built-in and known seller names speak. */
export function kindOf(config: Pick<Config, 'providerSettings'>, name: ProviderName): ProviderKind {
  const stated = config.providerSettings[providerVariable(name, 'PROTOCOL')];
  if (stated !== undefined) {
    if (stated === 'sms-activate' || stated === 'textverified') return stated;
    throw new ConfigError(`${providerVariable(name, 'PROTOCOL')} must be sms-activate or textverified, not "${stated}"`);
  }
  if (name === 'sandbox' || name === 'textverified' || name === 'sms-activate') return name;
  if (name in SELLER_PROFILES) return 'sms-activate';
  throw new ConfigError(`provider "${name}" needs ${providerVariable(name, 'PROTOCOL')} (sms-activate or textverified)`);
}

/** Everything needed to build one upstream; throws ConfigError naming the first missing or bad variable. */
export function upstreamSettings(config: Config, name: ProviderName): UpstreamSettings {
  const kind = kindOf(config, name);
  const own = (setting: string): string | undefined => config.providerSettings[providerVariable(name, setting)];
  const required = (setting: string, fallback: string | undefined, fallbackName?: string): string => {
    const value = own(setting) ?? fallback;
    if (value === undefined) {
      const alternatives = fallbackName ? ` (or ${fallbackName})` : '';
      throw new ConfigError(`provider "${name}" needs ${providerVariable(name, setting)}${alternatives}`);
    }
    return value;
  };
  const timeoutMs = numberSetting(name, 'TIMEOUT_MS', own('TIMEOUT_MS'), { min: 100, max: 120_000, whole: true }) ?? config.PROVIDER_TIMEOUT_MS;
  const requestsPerSecond = numberSetting(name, 'REQUESTS_PER_SECOND', own('REQUESTS_PER_SECOND'), { min: 0, max: 10_000 }) ?? config.PROVIDER_REQUESTS_PER_SECOND;
  const surcharges = surchargesOf(config, name, kind === 'sandbox' ? SANDBOX_SURCHARGES : globalSurcharges(config));
  switch (kind) {
    case 'sandbox':
      return { name, kind, baseUrl: '', apiKey: '', timeoutMs, surcharges };
    case 'textverified': {
      const legacy = name === 'textverified';
      return {
        name,
        kind,
        baseUrl: url(name, 'BASE_URL', own('BASE_URL') ?? config.TEXTVERIFIED_BASE_URL),
        apiUsername: required('API_USERNAME', legacy ? config.TEXTVERIFIED_API_USERNAME : undefined, legacy ? 'TEXTVERIFIED_API_USERNAME' : undefined),
        apiKey: required('API_KEY', legacy ? config.TEXTVERIFIED_API_KEY : undefined, legacy ? 'TEXTVERIFIED_API_KEY' : undefined),
        webhookSecret: own('WEBHOOK_SECRET') ?? (legacy ? config.TEXTVERIFIED_WEBHOOK_SECRET : undefined),
        requestsPerSecond,
        timeoutMs,
        surcharges,
      };
    }
    case 'sms-activate': {
      const legacy = name === 'sms-activate';
      const baseUrl = url(name, 'BASE_URL', required('BASE_URL', legacy ? config.SMS_ACTIVATE_BASE_URL : undefined, legacy ? 'SMS_ACTIVATE_BASE_URL' : undefined));
      const apiKey = required('API_KEY', legacy ? config.SMS_ACTIVATE_API_KEY : undefined, legacy ? 'SMS_ACTIVATE_API_KEY' : undefined);
      // A known seller's name picks its profile; otherwise the handler URL's host does.
      const seller = name in SELLER_PROFILES ? SELLER_PROFILES[name as keyof typeof SELLER_PROFILES] : sellerProfileFor(baseUrl);
      const currency = own('CURRENCY');
      if (currency !== undefined && !/^[A-Z]{3}$/.test(currency)) throw new ConfigError(`${providerVariable(name, 'CURRENCY')} must be a three-letter currency code`);
      return {
        name,
        kind,
        baseUrl,
        apiKey,
        requestsPerSecond,
        timeoutMs,
        sellerCurrency: currency,
        countryCodes: codeMap(name, 'COUNTRY_CODES', own('COUNTRY_CODES')),
        serviceCodes: codeMap(name, 'SERVICE_CODES', own('SERVICE_CODES')),
        seller,
        surcharges,
      };
    }
  }
}

/** Whether a name could be built from what is configured (a drained provider's credentials still present). */
export function canBuild(config: Config, name: ProviderName): boolean {
  try {
    upstreamSettings(config, name);
    return true;
  } catch (error) {
    if (error instanceof ConfigError) return false;
    throw error;
  }
}

function url(name: ProviderName, setting: string, value: string): string {
  try {
    const parsed = new URL(value);
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:') return value;
  } catch {
    // reported below
  }
  throw new ConfigError(`${providerVariable(name, setting)} must be an http:// or https:// URL`);
}

function numberSetting(name: ProviderName, setting: string, value: string | undefined, range: { min: number; max: number; whole?: boolean }): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number < range.min || number > range.max || (range.whole && !Number.isInteger(number))) {
    throw new ConfigError(`${providerVariable(name, setting)} must be a number from ${range.min} to ${range.max}`);
  }
  return number;
}

/** `US=187,GB=16` → { US: '187', GB: '16' }. */
function codeMap(name: ProviderName, setting: string, value: string | undefined): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const map: Record<string, string> = {};
  for (const pair of value.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const match = /^([A-Za-z0-9_-]+)=([A-Za-z0-9_-]+)$/.exec(pair);
    if (!match) throw new ConfigError(`${providerVariable(name, setting)}: "${pair}" is not ours=theirs (e.g. US=187,GB=16)`);
    map[match[1]!] = match[2]!;
  }
  return map;
}
