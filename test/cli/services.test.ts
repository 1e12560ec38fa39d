import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedEmbeddedDatabase } from '../support/app.ts';
import { runCli } from '../support/cli.ts';
import { startFakeSmsActivate, type FakeSmsActivate } from '../support/fake-sms-activate.ts';

/**
 * `namaskah services sync` and `services list` with several upstreams: each provider's rows come
 * from its own price list (price = its cost + the markup); the list shows one offer per service and
 * country at our price, with every provider behind it.
 */
describe('services sync and list across several upstreams [pglite]', () => {
  let dataDir: string;
  let north: FakeSmsActivate;
  let south: FakeSmsActivate;
  let env: Record<string, string>;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'namaskah-services-cli-'));
    await seedEmbeddedDatabase(dataDir);
    // US whatsapp: north 0.50, south 0.40 (the fake's default is 0.50; south's own list says 0.40).
    north = await startFakeSmsActivate({});
    south = await startFakeSmsActivate({ prices: { '187': { wa: { cost: 0.4, count: 3 } } } });
    const seller = (name: string, fake: FakeSmsActivate) => ({
      [`PROVIDER_${name}_PROTOCOL`]: 'sms-activate',
      [`PROVIDER_${name}_BASE_URL`]: fake.url,
      [`PROVIDER_${name}_API_KEY`]: 'sa-test-key',
      [`PROVIDER_${name}_REQUESTS_PER_SECOND`]: '0',
    });
    env = { DATA_DIR: dataDir, PROVIDERS: 'north,south', ...seller('NORTH', north), ...seller('SOUTH', south) };
  });
  after(async () => {
    await north?.close();
    await south?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('sync per provider, then one offer per service and country with every provider behind it', async () => {
    const onlySouth = await runCli(['services', 'sync', '--markup', '50', '--provider', 'south'], env);
    assert.equal(onlySouth.code, 0, onlySouth.stderr);
    assert.match(onlySouth.stdout, /synced 1 offer\(s\) from south/);
    const all = await runCli(['services', 'sync', '--markup', '30'], env);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /from north/);
    assert.match(all.stdout, /from south/);
    const list = await runCli(['services', 'list', '--country', 'US', '--json'], env);
    assert.equal(list.code, 0, list.stderr);
    const whatsapp = (JSON.parse(list.stdout) as { service: string; price_minor: number; routes: { provider: string; cost_minor: number; stock: number | null }[] }[]).find(
      (o) => o.service === 'whatsapp',
    );
    // South: cost 40, price 52 (30 % markup, rounded up); north: cost 50, price 65. Our price is 52,
    // and north, at 50, still keeps a margin under it.
    assert.equal(whatsapp?.price_minor, 52);
    assert.deepEqual(whatsapp?.routes, [
      { provider: 'north', cost_minor: 50, stock: 120 },
      { provider: 'south', cost_minor: 40, stock: 3 },
    ]);
  });

  test('a provider outside PROVIDERS is refused by name', async () => {
    const run = await runCli(['services', 'sync', '--markup', '30', '--provider', 'west'], env);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /--provider must be one of PROVIDERS \(north, south\)/);
  });
});
