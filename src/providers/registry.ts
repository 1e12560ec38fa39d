import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Provider, ProviderName } from './provider.ts';
import { SandboxProvider } from './sandbox.ts';
import { DEFAULT_COUNTRY_CODES, DEFAULT_SERVICE_CODES, SmsActivateProvider } from './sms-activate/adapter.ts';
import { configuredProviders, upstreamSettings } from './settings.ts';
import { TextVerifiedProvider } from './textverified/adapter.ts';

/**
 * Builds an upstream by its configured name (default: the first of PROVIDERS, or PROVIDER).
 * Missing credentials stop the start-up with a ConfigError naming the variable (settings.ts).
 * A requests-per-second setting, when given, overrides the adapter's own pacing; unset, each
 * adapter paces at its upstream's safe rate.
 */
export function createProvider(
  config: Config,
  clock: Clock,
  options: { logger?: Pick<Logger, 'error'>; name?: ProviderName } = {},
): Provider {
  const settings = upstreamSettings(config, options.name ?? configuredProviders(config)[0]!);
  switch (settings.kind) {
    case 'sandbox':
      return new SandboxProvider({
        clock,
        delayMs: config.SANDBOX_DELAY_MS,
        failureRate: config.SANDBOX_FAILURE_RATE,
        ttlSeconds: config.VERIFICATION_TTL_SECONDS,
        surcharges: settings.surcharges,
      });
    case 'textverified':
      return new TextVerifiedProvider({
        name: settings.name,
        baseUrl: settings.baseUrl,
        apiUsername: settings.apiUsername!,
        apiKey: settings.apiKey,
        webhookSecret: settings.webhookSecret,
        requestsPerSecond: settings.requestsPerSecond,
        timeoutMs: settings.timeoutMs,
        surcharges: settings.surcharges,
        currency: config.CURRENCY,
        clock,
      });
    case 'sms-activate': {
      const seller = settings.seller!;
      const logger = options.logger;
      return new SmsActivateProvider({
        ...seller.options,
        name: settings.name,
        baseUrl: settings.baseUrl,
        apiKey: settings.apiKey,
        requestsPerSecond: settings.requestsPerSecond ?? seller.options.requestsPerSecond,
        timeoutMs: settings.timeoutMs,
        currency: config.CURRENCY,
        surcharges: settings.surcharges,
        // The operator's code maps add to (and override) the seller's or the protocol's own.
        ...(settings.countryCodes ? { countryCodes: { ...(seller.options.countryCodes ?? DEFAULT_COUNTRY_CODES), ...settings.countryCodes } } : {}),
        ...(settings.serviceCodes ? { serviceCodes: { ...(seller.options.serviceCodes ?? DEFAULT_SERVICE_CODES), ...settings.serviceCodes } } : {}),
        ...(settings.sellerCurrency ? { sellerCurrency: settings.sellerCurrency } : {}),
        // The seller's own activation lifetime is not our TTL: the deadline is already the earlier
        // of the two, and a TTL longer than the seller's window must not make us wait for a number
        // the seller has already taken back.
        clock,
        alarm: logger ? (message, detail) => logger.error({ provider: settings.name, seller: seller.name, ...detail }, message) : undefined,
      });
    }
  }
}
