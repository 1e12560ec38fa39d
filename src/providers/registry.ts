import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { ConfigError, type Config } from '../config.ts';
import type { Provider } from './provider.ts';
import { SandboxProvider } from './sandbox.ts';
import { SmsActivateProvider } from './sms-activate/adapter.ts';
import { sellerProfileFor } from './sms-activate/sellers.ts';
import { TextVerifiedProvider } from './textverified/adapter.ts';

/**
 * Builds the configured upstream. Missing credentials for a real provider stop the start-up.
 * PROVIDER_REQUESTS_PER_SECOND, when set, overrides the adapter's own pacing; unset, each adapter
 * paces at its upstream's safe rate.
 */
export function createProvider(config: Config, clock: Clock, options: { logger?: Pick<Logger, 'error'> } = {}): Provider {
  switch (config.PROVIDER) {
    case 'sandbox':
      return new SandboxProvider({
        clock,
        delayMs: config.SANDBOX_DELAY_MS,
        failureRate: config.SANDBOX_FAILURE_RATE,
        ttlSeconds: config.VERIFICATION_TTL_SECONDS,
      });
    case 'textverified':
      if (!config.TEXTVERIFIED_API_USERNAME || !config.TEXTVERIFIED_API_KEY) {
        throw new ConfigError('PROVIDER=textverified needs TEXTVERIFIED_API_USERNAME and TEXTVERIFIED_API_KEY');
      }
      return new TextVerifiedProvider({
        baseUrl: config.TEXTVERIFIED_BASE_URL,
        apiUsername: config.TEXTVERIFIED_API_USERNAME,
        apiKey: config.TEXTVERIFIED_API_KEY,
        webhookSecret: config.TEXTVERIFIED_WEBHOOK_SECRET,
        surcharges: surchargesOf(config),
        requestsPerSecond: config.PROVIDER_REQUESTS_PER_SECOND,
        timeoutMs: config.PROVIDER_TIMEOUT_MS,
        currency: config.CURRENCY,
        clock,
      });
    case 'sms-activate': {
      if (!config.SMS_ACTIVATE_API_KEY) throw new ConfigError('PROVIDER=sms-activate needs SMS_ACTIVATE_API_KEY');
      const seller = sellerProfileFor(config.SMS_ACTIVATE_BASE_URL);
      const logger = options.logger;
      return new SmsActivateProvider({
        ...seller.options,
        baseUrl: config.SMS_ACTIVATE_BASE_URL,
        apiKey: config.SMS_ACTIVATE_API_KEY,
        requestsPerSecond: config.PROVIDER_REQUESTS_PER_SECOND ?? seller.options.requestsPerSecond,
        timeoutMs: config.PROVIDER_TIMEOUT_MS,
        currency: config.CURRENCY,
        surcharges: surchargesOf(config),
        // The seller's own activation lifetime is not our TTL: the deadline is already the earlier
        // of the two, and a TTL longer than the seller's window must not make us wait for a number
        // the seller has already taken back.
        clock,
        alarm: logger ? (message, detail) => logger.error({ provider: 'sms-activate', seller: seller.name, ...detail }, message) : undefined,
      });
    }
  }
}

function surchargesOf(config: Config): { areaCodeMinor: number; carrierMinor: number; voiceMinor: number } {
  return { areaCodeMinor: config.AREA_CODE_SURCHARGE_MINOR, carrierMinor: config.CARRIER_SURCHARGE_MINOR, voiceMinor: config.VOICE_SURCHARGE_MINOR };
}
