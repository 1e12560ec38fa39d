import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestApp, type TestApp } from '../support/app.ts';
import { login, registerUser, type TestUser } from '../support/http.ts';

/**
 * The Buy form's number options in Chromium under the real CSP: area code, carrier and voice change
 * the price shown and what is bought; a quantity buys several numbers at once, and the ones that
 * could not be bought are explained and not charged. Money is checked exactly through the API.
 */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let app: TestApp;
let browser: Browser;
let page: Page;
let customer: TestUser;
const problems: string[] = [];

const walletOf = async (user: TestUser) => {
  const w = (await user.client.get('/v1/wallet')).body;
  return [w.balance_minor, w.held_minor, w.available_minor];
};

before(async () => {
  const executablePath = process.env.CHROMIUM_PATH;
  assert.ok(executablePath, 'CHROMIUM_PATH is not set: run with `node scripts/run-tests.mjs test/e2e/number-options.test.ts`');
  // The engine runs, but test_timeout numbers never deliver: nothing is captured during the test.
  app = await startTestApp({ env: { MAX_ACTIVE_VERIFICATIONS: '50', PURCHASES_PER_MINUTE: '1000' } });
  customer = await registerUser(app.url);
  const admin = await login(app.url, app.admin.email, app.admin.password);
  assert.equal((await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 1000, reason: 'test funds' })).status, 201);
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
  page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`uncaught ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`CSP ${message.text()}`);
  });
  await page.goto(`${app.url}/#/login`);
  await page.getByLabel('Email').fill(customer.email);
  await page.getByLabel('Password').fill(customer.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Buy a number' }).waitFor();
});

after(async () => {
  await browser?.close();
  await app?.close();
});

test('area code, carrier and voice: the price shown includes the surcharges, and that is what is held', { timeout: 90_000 }, async () => {
  await page.locator('#country').selectOption('US');
  await page.locator('#service').selectOption('test_timeout');
  await page.getByText('Number options').click();
  // Sandbox: test_timeout costs $0.50; area code and carrier add $0.20 each, voice $0.40.
  await page.locator('#options-hint').getByText(/Area code \+ \$0\.20/).waitFor();
  await page.getByLabel('Area codes').fill('212');
  await page.getByLabel('Carriers').fill('TMO');
  await page.getByLabel('Code by voice call').check();
  await page.locator('#price').getByText('$1.30').waitFor();
  await page.getByRole('button', { name: 'Buy number · $1.30' }).click();
  await page.locator('#buy-status').getByText(/Number bought/).waitFor();

  const [bought] = (await customer.client.get('/v1/verifications?limit=1')).body.items;
  assert.equal(bought.price_minor, 130);
  assert.deepEqual(bought.options, { area_codes: ['212'], carriers: ['tmo'], capability: 'voice' });
  assert.match(bought.phone_number, /^1212\d{7}$/);
  assert.deepEqual(await walletOf(customer), [1000, 130, 870]);
  assert.deepEqual(problems, []);
});

test('a quantity buys several numbers at once; the ones not bought are explained and cost nothing', { timeout: 90_000 }, async () => {
  await page.getByLabel('Area codes').fill('');
  await page.getByLabel('Carriers').fill('');
  await page.getByLabel('Code by voice call').uncheck();
  await page.locator('#service').selectOption('test_alternate');
  await page.getByLabel('How many numbers').fill('3');
  await page.locator('#price').getByText('$1.50 (3 × $0.50)').waitFor();
  await page.getByRole('button', { name: 'Buy 3 numbers · $1.50' }).click();
  await page.locator('#buy-status').getByText('Bought 2 of 3 numbers.').waitFor();
  await page.locator('#buy-error').getByText(/1 of 3 numbers could not be bought; you were not charged for them/).waitFor();

  const items = (await customer.client.get('/v1/verifications?limit=3')).body.items as { state: string; service: string }[];
  assert.deepEqual(items.map((v) => v.state).sort(), ['failed', 'waiting', 'waiting']);
  assert.deepEqual(await walletOf(customer), [1000, 130 + 100, 870 - 100]);

  // An impossible quantity is refused in the form, before anything is sent.
  await page.getByLabel('How many numbers').fill('51');
  await page.getByRole('button', { name: /Buy/ }).click();
  await page.locator('#buy-error').getByText(/from 1 to 50/).waitFor();
  assert.equal((await customer.client.get('/v1/verifications?limit=50')).body.items.length, 4);
  assert.deepEqual(problems, []);
});
