import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { creditWallet } from '../../src/ledger/ledger.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { login, registerUser, type TestUser } from '../support/http.ts';

/**
 * The Upstreams page of the dashboard, in Chromium under the real CSP: an admin sees the provider
 * with its mode, breaker, balance and offers; the kill switch on the page stops purchases through
 * the API, drain keeps them stopped, enable sells again; a customer is not shown the page; the buy
 * page's picker shows how an offer delivered over the last day (too few: said so).
 */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let app: TestApp;
let browser: Browser;
let page: Page;
let customer: TestUser;
let admin: TestUser;
const problems: string[] = [];

before(async () => {
  const executablePath = process.env.CHROMIUM_PATH;
  assert.ok(executablePath, 'CHROMIUM_PATH is not set: run with `node scripts/run-tests.mjs test/e2e/upstreams-page.test.ts`');
  app = await startTestApp();
  customer = await registerUser(app.url);
  admin = await login(app.url, app.admin.email, app.admin.password);
  await creditWallet(app.ctx.database.db, { userId: customer.id, amountMinor: 5000, kind: 'topup', actor: 'admin', reason: 'test', now: app.ctx.clock.now() });
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
  page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`uncaught ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`CSP ${message.text()}`);
  });
});

after(async () => {
  await browser?.close();
  await app?.close();
});

const buy = () => customer.client.post('/v1/verifications', { service: 'test_success' }, { headers: { 'idempotency-key': randomUUID() } });

async function signIn(user: TestUser) {
  await page.goto(`${app.url}/#/login`);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Buy a number' }).waitFor();
}

test('an admin sees the upstreams and uses the kill switch, drain and enable from the page', { timeout: 90_000 }, async () => {
  await signIn(admin);
  await page.getByRole('link', { name: 'Upstreams' }).click();
  await page.getByRole('heading', { name: 'Upstreams', level: 1 }).waitFor();
  const card = page.locator('.upstream[data-provider="sandbox"]');
  await card.getByRole('heading', { name: 'sandbox' }).waitFor();
  await card.locator('[data-role="mode"]').getByText('Enabled').waitFor();
  await card.getByText('Closed — healthy').waitFor();
  assert.match(await card.locator('[data-role="balance"]').innerText(), /\$10,000\.00/);
  await card.locator('[data-role="owed"]').getByText(/^0 · up to/).waitFor();
  const whatsapp = card.locator('table[data-offers="sandbox"] tbody tr', { hasText: 'whatsapp' }).first();
  await whatsapp.getByText('no data').waitFor();

  await card.getByRole('button', { name: 'Disable' }).click();
  await page.locator('.upstream[data-provider="sandbox"][data-mode="disabled"]').locator('[data-role="mode"]').getByText('Disabled — kill switch').waitFor();
  const refused = await buy();
  assert.equal(refused.status, 503);
  assert.equal(refused.body.code, 'provider_unavailable');

  await page.locator('.upstream[data-provider="sandbox"]').getByRole('button', { name: 'Drain' }).click();
  await page.locator('.upstream[data-provider="sandbox"][data-mode="draining"]').waitFor();
  assert.equal((await buy()).body.code, 'provider_unavailable');

  await page.locator('.upstream[data-provider="sandbox"]').getByRole('button', { name: 'Enable' }).click();
  await page.locator('.upstream[data-provider="sandbox"][data-mode="enabled"]').waitFor();
  assert.equal((await buy()).status, 201);

  // The threshold: saved from the page, shown as low against the sandbox's balance.
  await page.getByLabel('Low-balance alert threshold for sandbox').fill('20000.00');
  await page.getByRole('button', { name: 'Save threshold' }).click();
  await page.locator('.upstream[data-provider="sandbox"] [data-role="balance"]').getByText('Low').waitFor();
  const listed = await admin.client.get('/v1/admin/upstreams');
  assert.equal(listed.body.upstreams[0].balance_low_minor, 2_000_000);
  assert.deepEqual(problems, []);
});

test('a customer is not shown the page, and the picker says how each offer delivered', { timeout: 60_000 }, async () => {
  await page.context().clearCookies();
  await signIn(customer);
  assert.equal(await page.getByRole('link', { name: 'Upstreams' }).count(), 0);
  await page.locator('#delivery-hint').getByText(/Last 24 hours:/).waitFor();
  assert.match(await page.locator('#delivery-hint').innerText(), /too few to show a success rate|no finished verifications yet/);
  await page.goto(`${app.url}/#/admin/upstreams`);
  await page.getByText('This page is for operators.').waitFor();
  assert.deepEqual(problems, []);
});
