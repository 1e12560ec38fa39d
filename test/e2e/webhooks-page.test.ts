import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestApp, type TestApp } from '../support/app.ts';
import { login, registerUser, type TestUser } from '../support/http.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

/**
 * The Webhooks page of the dashboard, in Chromium under the real CSP: an endpoint is added (the
 * secret shown once), a credit reaches a real receiver that verifies it, the page lists the
 * delivery with its attempt, and the endpoint is disabled from the page.
 */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let app: TestApp;
let browser: Browser;
let page: Page;
let customer: TestUser;
let admin: TestUser;
let receiver: WebhookReceiver;
const problems: string[] = [];

before(async () => {
  const executablePath = process.env.CHROMIUM_PATH;
  assert.ok(executablePath, 'CHROMIUM_PATH is not set: run with `node scripts/run-tests.mjs test/e2e/webhooks-page.test.ts`');
  app = await startTestApp({ env: { WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW_PRIVATE: 'true' } });
  receiver = await new WebhookReceiver().start();
  customer = await registerUser(app.url);
  admin = await login(app.url, app.admin.email, app.admin.password);
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
  await receiver?.stop();
  await app?.close();
});

test('add an endpoint, see a verified delivery and its attempt, disable it', { timeout: 90_000 }, async () => {
  await page.goto(`${app.url}/#/login`);
  await page.getByLabel('Email').fill(customer.email);
  await page.getByLabel('Password').fill(customer.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('heading', { name: 'Webhooks' }).waitFor();

  // A refused URL is explained next to the field.
  await page.getByLabel('Endpoint URL').fill('ftp://files.example.com/hooks');
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  await page.locator('#webhook-url-error').getByText(/cannot be used/).waitFor();

  await page.getByLabel('Endpoint URL').fill(receiver.url);
  await page.getByLabel('Description (optional)').fill('my backend');
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  const secret = (await page.locator('#new-webhook-secret').innerText()).trim();
  assert.match(secret, /^whsec_/);
  receiver.secrets = [secret];
  await page.locator('.endpoint').getByText('my backend').waitFor();

  assert.equal((await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 300, reason: 'hello' })).status, 201);
  const deadline = Date.now() + 20_000;
  while (receiver.received.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(receiver.received.length, 1, 'the running engine delivered the credit');
  assert.ok(receiver.received[0]!.verifiedWith, 'verified with the secret the page showed');
  assert.equal(receiver.received[0]!.payload.type, 'wallet.credited');

  await page.getByText('Recent deliveries').click();
  const delivery = page.locator(`.delivery[data-event="${receiver.received[0]!.id}"]`);
  await delivery.getByText('succeeded').waitFor();
  await delivery.locator('.attempt.ok').getByText(/HTTP 200/).waitFor();

  await page.getByRole('button', { name: 'Disable' }).click();
  await page.locator('.endpoint .badge').getByText('Disabled').waitFor();
  const [endpoint] = (await customer.client.get('/v1/webhook-endpoints')).body.items;
  assert.equal(endpoint.enabled, false);
  assert.deepEqual(problems, []);
});
