import type { Command } from 'commander';
import { systemClock } from '../clock.ts';
import { loadConfig } from '../config.ts';
import { DataDirLockedError } from '../db/lock.ts';
import { formatMinor } from '../money.ts';
import { CommandFailure, UsageError } from './errors.ts';
import type { CliIo } from './io.ts';

/**
 * `namaskah services list|sync`: the catalogue customers buy from. `sync` fills it from the
 * configured real provider's own price list plus a markup; the sandbox's catalogue is seeded at start.
 * Both open the database directly (stop an embedded server first; on PostgreSQL they run beside it).
 */
export function registerCatalogueCommands(program: Command, io: CliIo): void {
  const clock = io.clock ?? systemClock;
  const services = program.command('services').description("the catalogue: what customers can buy and at what price");

  const open = async () => {
    const config = loadConfig(io.env);
    const { openConfiguredDatabase, prepareDatabase } = await import('../server.ts');
    const opened = await openConfiguredDatabase(config, clock.now()).catch((error: unknown) => {
      if (error instanceof DataDirLockedError) throw new CommandFailure(`${error.message}. Stop the server to change the embedded catalogue.`);
      throw error;
    });
    await prepareDatabase(opened.database, config, clock.now());
    return { config, opened };
  };

  services
    .command('list')
    .description('list the offers customers see (one per service and country, across the configured providers), with each provider behind it')
    .option('--country <code>', 'only this country (ISO 3166 alpha-2)')
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { country?: string; json?: boolean }) => {
      if (options.country !== undefined && !/^[A-Z]{2}$/.test(options.country)) throw new UsageError('--country must be two upper-case letters, e.g. US');
      const { config, opened } = await open();
      try {
        const { listOffers } = await import('../catalogue/catalogue.ts');
        const { configuredProviders } = await import('../providers/settings.ts');
        const providers = configuredProviders(config);
        const offers = await listOffers(opened.database.db, providers, options.country);
        if (options.json) {
          const routes = (o: (typeof offers)[number]) => o.routes.map((r) => ({ provider: r.provider, cost_minor: r.costMinor, stock: r.stock }));
          io.stdout(
            `${JSON.stringify(offers.map((o) => ({ service: o.service, country: o.country, name: o.name, price_minor: o.priceMinor, cost_minor: o.costMinor, enabled: o.enabled, routes: routes(o) })), null, 2)}\n`,
          );
          return;
        }
        if (offers.length === 0) {
          const onlySandbox = providers.length === 1 && providers[0] === 'sandbox';
          io.stdout(`no offers for ${providers.join(', ')}${onlySandbox ? '' : ': run "namaskah services sync --markup <percent>"'}\n`);
          return;
        }
        for (const o of offers) {
          const behind = o.routes.map((r) => `${r.provider} ${formatMinor(r.costMinor, config.CURRENCY)}`).join(', ');
          io.stdout(`${o.country}  ${o.service.padEnd(24)} ${formatMinor(o.priceMinor, config.CURRENCY).padStart(12)}  (cost cap ${formatMinor(o.costMinor, config.CURRENCY)}; ${behind})\n`);
        }
      } finally {
        await opened.close();
      }
    });

  services
    .command('sync')
    .description("fill the catalogue from each configured provider's price list: its price = its cost plus the markup, rounded up")
    .requiredOption('--markup <percent>', 'whole percent added to the upstream cost, e.g. 30 (the margin rule; per provider with --provider)')
    .option('--provider <name>', 'only this configured provider (default: every configured provider but the sandbox)')
    .action(async (options: { markup: string; provider?: string }) => {
      if (!/^\d{1,4}$/.test(options.markup)) throw new UsageError('--markup must be a whole percent from 0 to 9999, e.g. 30');
      const { config, opened } = await open();
      const { configuredProviders } = await import('../providers/settings.ts');
      const listed = configuredProviders(config);
      if (options.provider !== undefined && !listed.includes(options.provider)) {
        await opened.close();
        throw new UsageError(`--provider must be one of PROVIDERS (${listed.join(', ')})`);
      }
      const names = (options.provider ? [options.provider] : listed).filter((name) => name !== 'sandbox');
      if (names.length === 0) {
        await opened.close();
        throw new UsageError('the sandbox catalogue is seeded at start; sync is for a provider such as textverified or an SMS-Activate-protocol seller');
      }
      try {
        const { createProvider } = await import('../providers/registry.ts');
        const { syncCatalogue } = await import('../catalogue/catalogue.ts');
        for (const name of names) {
          const provider = createProvider(config, clock, { name });
          const result = await syncCatalogue({ database: opened.database, provider }, { markupPercent: Number(options.markup) });
          io.stdout(`synced ${result.offers.length} offer(s) from ${result.provider}; skipped ${result.skipped.length} without a usable cost\n`);
        }
      } finally {
        await opened.close();
      }
    });
}
