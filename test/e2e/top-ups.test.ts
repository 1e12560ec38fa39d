// The sandbox top-up flow end to end in headless Chromium against a real Namaskah server: Add funds
// with a preset → the sandbox checkout page → Pay → back on the return page, which follows the
// top-up live (server-sent events) from waiting to credited; Fail and Abandon; the history. Money
// is asserted exactly, in the UI and through the API. Chromium comes from CHROMIUM_PATH (set by
// scripts/run-tests.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { startTestApp, type TestApp } from '../support/app.ts';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let app: TestApp;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageProblems: string[] = [];

function watch(p: Page, name: string): Page {
  p.on('pageerror', (error) => pageProblems.push(`${name}: uncaught ${error.message}`));
  p.on('console', (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to (load|apply|execute|connect)/i.test(text)) pageProblems.push(`${name}: CSP ${text}`);
  });
  return p;
}

async function waitForText(locator: Locator, expected: RegExp, timeout = 15_000): Promise<string> {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    try {
      if ((await locator.count()) > 0) {
        last = (await locator.first().innerText({ timeout: 1000 })).trim();
        if (expected.test(last)) return last;
      }
    } catch {
      /* re-rendering: try again */
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`timed out waiting for ${String(expected)}; last text was ${JSON.stringify(last)}`);
}

async function api<T>(path: string): Promise<T> {
  const response = await context.request.get(`${app.url}${path}`);
  assert.equal(response.status(), 200, `GET ${path} → ${response.status()}`);
  return (await response.json()) as T;
}

/** Add funds with a preset amount; returns the top-up id once the browser is on the sandbox checkout. */
async function startTopUp(preset: string): Promise<string> {
  await page.goto(`${app.url}/#/top-ups`);
  await page.getByRole('heading', { name: 'Add funds' }).waitFor();
  await page.getByRole('button', { name: preset, exact: true }).click();
  await page.getByRole('button', { name: 'Continue to payment' }).click();
  await page.waitForURL(/\/checkout\/sandbox\/[0-9a-f-]{36}$/);
  return page.url().split('/').at(-1)!;
}

before(async () => {
  const executablePath = process.env.CHROMIUM_PATH;
  assert.ok(executablePath, 'CHROMIUM_PATH is not set: run with `node scripts/run-tests.mjs test/e2e/top-ups.test.ts`');
  app = await startTestApp({ env: { TOP_UP_MIN_MINOR: '500', TOP_UP_MAX_MINOR: '50000' } });
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US', timezoneId: 'UTC' });
  page = watch(await context.newPage(), 'customer');
  const email = `e2e-top-up-${Date.now()}@example.com`;
  const registered = await context.request.post(`${app.url}/v1/auth/register`, { data: { email, password: 'correct horse battery' } });
  assert.equal(registered.status(), 201, await registered.text());
});

after(async () => {
  await browser?.close();
  await app?.close();
});

test('Add funds → sandbox checkout → Pay: the return page follows the top-up live to credited, once', { timeout: 90_000 }, async () => {
  const id = await startTopUp('$25.00');
  await waitForText(page.locator('h1'), /Sandbox checkout — 25\.00 USD/);

  // The return page, open in a second tab before paying, shows it waiting…
  const returned = watch(await context.newPage(), 'return');
  await returned.goto(`${app.url}/#/top-ups/${id}`);
  await waitForText(returned.locator('#top-up-status .badge'), /^Waiting for payment$/);
  await waitForText(returned.locator('#balance-available'), /^\$0\.00$/);

  // …and turns to credited live, without a reload, when the processor's webhook lands.
  await page.getByRole('button', { name: 'Pay 25.00 USD' }).click();
  await page.waitForURL(new RegExp(`#/top-ups/${id}$`));
  await waitForText(returned.locator('#top-up-status .badge'), /^Credited$/);
  await waitForText(returned.locator('#balance-available'), /^\$25\.00$/);
  await waitForText(page.locator('#top-up-status .badge'), /^Credited$/);
  await waitForText(page.locator('#top-up-amount'), /^\$25\.00$/);

  const wallet = await api<{ balance_minor: number; available_minor: number }>('/v1/wallet');
  assert.deepEqual([wallet.balance_minor, wallet.available_minor], [2500, 2500]);
  const transactions = await api<{ items: { type: string; amount_minor: number }[] }>('/v1/wallet/transactions');
  assert.deepEqual(transactions.items.map((t) => [t.type, t.amount_minor]), [['topup', 2500]]);
  await returned.close();
});

test('Fail and Abandon credit nothing; the history lists every top-up with its status', { timeout: 90_000 }, async () => {
  const failed = await startTopUp('$5.00');
  await page.getByRole('button', { name: 'Fail' }).click();
  await page.waitForURL(new RegExp(`#/top-ups/${failed}$`));
  await waitForText(page.locator('#top-up-status .badge'), /^Failed$/);

  const abandoned = await startTopUp('$10.00');
  await page.getByRole('button', { name: 'Abandon' }).click();
  await page.waitForURL(new RegExp(`#/top-ups/${abandoned}$`));
  await waitForText(page.locator('#top-up-status .badge'), /^Waiting for payment$/);
  await page.getByRole('link', { name: 'Continue to payment' }).waitFor();

  await page.goto(`${app.url}/#/top-ups`);
  await page.getByRole('heading', { name: 'Your top-ups' }).waitFor();
  const rows = page.locator('#top-ups tr');
  await waitForText(rows.first(), /\$10\.00/);
  const statuses = await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.status));
  assert.deepEqual(statuses, ['pending', 'failed', 'credited']);
  const wallet = await api<{ balance_minor: number }>('/v1/wallet');
  assert.equal(wallet.balance_minor, 2500);
  assert.deepEqual(pageProblems, []);
});
