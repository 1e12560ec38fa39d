import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestApp, type TestApp } from '../support/app.ts';
import { login, registerUser, type TestUser } from '../support/http.ts';

/**
 * Number care in the dashboard, in Chromium under the real CSP, against a server with its engine
 * running: presets (saved on the server, marked favourite, applied to the form), another code on a
 * received number, a report of a number whose code never came, and the low-balance alert.
 * Money is checked exactly through the API.
 */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let app: TestApp;
let browser: Browser;
let page: Page;
let customer: TestUser;
const problems: string[] = [];

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string, timeout = 20_000): Promise<T> {
  const deadline = Date.now() + timeout;
  let value = await read();
  while (!ok(value)) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; last value ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    value = await read();
  }
  return value;
}

const wallet = async () => {
  const w = (await customer.client.get('/v1/wallet')).body;
  return [w.balance_minor, w.held_minor, w.available_minor];
};

before(async () => {
  const executablePath = process.env.CHROMIUM_PATH;
  assert.ok(executablePath, 'CHROMIUM_PATH is not set: run with `node scripts/run-tests.mjs test/e2e/number-care.test.ts`');
  app = await startTestApp();
  customer = await registerUser(app.url);
  const admin = await login(app.url, app.admin.email, app.admin.password);
  assert.equal((await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 1000, reason: 'e2e' })).status, 201);
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

test('presets: saved on the server, marked favourite, applied to the form', { timeout: 60_000 }, async () => {
  await page.getByLabel('Service').selectOption('test_success');
  await page.getByLabel('Preset name').fill('Quick test');
  await page.getByRole('button', { name: 'Save as preset' }).click();
  const chip = page.locator('.preset[data-name="Quick test"]');
  await chip.waitFor();
  await chip.getByRole('button', { name: 'Mark Quick test as favourite' }).click();
  await page.locator('.preset[data-name="Quick test"] .preset-use').getByText('★ Quick test').waitFor();
  const presets = (await customer.client.get('/v1/presets')).body.items;
  assert.deepEqual(presets.map((p: { name: string; service: string; favourite: boolean }) => [p.name, p.service, p.favourite]), [['Quick test', 'test_success', true]]);

  await page.getByLabel('Service').selectOption('test_timeout');
  await page.locator('.preset[data-name="Quick test"] .preset-use').click();
  assert.equal(await page.getByLabel('Service').inputValue(), 'test_success');
});

test('another code on a received number: a free second code on the same number', { timeout: 60_000 }, async () => {
  await page.getByLabel('Service').selectOption('test_success');
  await page.locator('#buy-button').click();
  const parent = page.locator('#active-verifications .vcard').first();
  await parent.locator('.vcard-code[data-received="true"]').waitFor({ timeout: 20_000 });
  const parentId = await parent.getAttribute('data-id');
  await parent.getByRole('button', { name: 'Get another code' }).click();

  const child = await eventually(
    async () => ((await customer.client.get('/v1/verifications?limit=50')).body.items as { id: string; parent_id: string | null }[]).find((v) => v.parent_id === parentId),
    (v) => v !== undefined,
    'the additional code',
  );
  const childCard = page.locator(`.vcard[data-id="${child!.id}"]`);
  await childCard.locator('.vcard-code[data-received="true"]').waitFor({ timeout: 20_000 });
  await childCard.locator('.vcard-money').getByText('Free: another code on the same number.').waitFor();
  assert.deepEqual(await wallet(), [950, 0, 950], 'one charge, for the first code');
});

test('report a number whose code never came: cancelled and released, said on the card', { timeout: 60_000 }, async () => {
  await page.getByLabel('Service').selectOption('test_timeout');
  await page.locator('#buy-button').click();
  const waiting = page.locator('#active-verifications .vcard[data-state="waiting"]').first();
  await waiting.waitFor();
  const card = page.locator(`.vcard[data-id="${await waiting.getAttribute('data-id')}"]`);
  await card.getByLabel('Report reason').selectOption('code_not_received');
  await card.getByRole('button', { name: 'Report number' }).click();
  await card.locator('.vcard-report').getByText(/Number reported\. Nothing was charged for it\./).waitFor();
  await page.locator(`.vcard[data-id="${await card.getAttribute('data-id')}"][data-state="cancelled"]`).waitFor();
  assert.equal(await card.getByRole('button', { name: 'Report number' }).isVisible(), false, 'reported once');
  assert.deepEqual(await wallet(), [950, 0, 950]);
});

test('the low-balance alert: set on the Account page, one notification when the balance is below it', { timeout: 60_000 }, async () => {
  await page.evaluate(() => {
    location.hash = '#/account';
  });
  await page.getByRole('heading', { name: 'Low-balance alert' }).waitFor();
  await page.getByLabel('Alert me when my available balance goes below').fill('9.605');
  await page.getByRole('button', { name: 'Save alert' }).click();
  await page.locator('#low-balance-threshold-error').getByText(/2 decimal places/).waitFor();
  await page.getByLabel('Alert me when my available balance goes below').fill('9.60');
  await page.getByRole('button', { name: 'Save alert' }).click();
  await eventually(async () => (await customer.client.get('/v1/account/low-balance')).body.threshold_minor, (t) => t === 960, 'the threshold');
  const notices = await eventually(
    async () => ((await customer.client.get('/v1/notifications')).body.items as { kind: string; body: string }[]).filter((n) => n.kind === 'low_balance'),
    (list) => list.length > 0,
    'the low-balance notice',
  );
  assert.equal(notices.length, 1);
  assert.match(notices[0]!.body, /9\.50 USD, below the 9\.60 USD/);
  assert.deepEqual(problems, []);
});
