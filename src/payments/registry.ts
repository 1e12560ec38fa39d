import { ConfigError, type Config } from '../config.ts';
import type { PaymentProcessor, PaymentProcessors } from './processor.ts';
import { PaystackProcessor } from './processors/paystack.ts';
import { SandboxProcessor } from './processors/sandbox.ts';
import { StripeProcessor } from './processors/stripe.ts';
import type { ProcessorName } from './schema.ts';

/** The processors PAYMENT_PROCESSORS enables, in its order (the first is the default), built once at start. */
export function createPaymentProcessors(config: Config): PaymentProcessors {
  if (config.TOP_UP_MIN_MINOR > config.TOP_UP_MAX_MINOR) throw new ConfigError('TOP_UP_MIN_MINOR is above TOP_UP_MAX_MINOR');
  const processors = new Map<ProcessorName, PaymentProcessor>();
  for (const name of config.PAYMENT_PROCESSORS) processors.set(name, createProcessor(name, config));
  return processors;
}

function createProcessor(name: ProcessorName, config: Config): PaymentProcessor {
  switch (name) {
    case 'sandbox':
      return new SandboxProcessor(config.SANDBOX_PAYMENTS_WEBHOOK_SECRET);
    case 'stripe':
      if (!config.STRIPE_SECRET_KEY || !config.STRIPE_WEBHOOK_SECRET) {
        throw new ConfigError('PAYMENT_PROCESSORS names stripe: set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET');
      }
      return new StripeProcessor({
        secretKey: config.STRIPE_SECRET_KEY,
        webhookSecret: config.STRIPE_WEBHOOK_SECRET,
        apiBaseUrl: config.STRIPE_API_BASE_URL,
        timeoutMs: config.PROVIDER_TIMEOUT_MS,
      });
    case 'paystack':
      if (!config.PAYSTACK_SECRET_KEY) throw new ConfigError('PAYMENT_PROCESSORS names paystack: set PAYSTACK_SECRET_KEY');
      return new PaystackProcessor({ secretKey: config.PAYSTACK_SECRET_KEY, baseUrl: config.PAYSTACK_BASE_URL, timeoutMs: config.PROVIDER_TIMEOUT_MS });
  }
}
