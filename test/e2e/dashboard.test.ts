// End-to-end tests of the web dashboard in headless Chromium against a real Namaskah server
// (fresh embedded database, sandbox provider, background engine running).
//
// The scenarios share one server, one customer and one operator, and run in order: sign up →
// operator credit → buy with the code arriving live → history → double click → retried click
// after a lost answer → cancel → errors → deadline refund → wallet → ops → phone-sized screen.
// Money is asserted exactly, in the UI and through the API.
//
// Chromium comes from CHROMIUM_PATH, which scripts/run-tests.mjs sets after looking in the usual
// places. Screenshots go to docs/screenshots/ only with UPDATE_SCREENSHOTS=1 (else a temp dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Frame, type Locator, type Page, type Request } from 'playwright-core';

interface TestApp {
  url: string;
  close(): Promise<void>;
  admin: { email: string; password: string };
}
type StartTestApp = (options?: { verificationTtlSeconds?: number; env?: Record<string, string> }) => Promise<TestApp>;

interface Verification {
  id: string;
  service: string;
  state: string;
  phone_number: string | null;
  price_minor: number;
  code: string | null;
  refunded: boolean;
  can_cancel: boolean;
}
interface Transaction {
  id: string;
  type: string;
  amount_minor: number;
  gross_minor?: number;
  verification_id: string | null;
}
interface Wallet {
  balance_minor: number;
  held_minor: number;
  available_minor: number;
  currency: string;
}

// Short enough that the deadline refund happens inside the test, long enough for every other flow.
const TTL_SECONDS = 15;
const CREDIT_MINOR = 1000;
const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1';
const SCREENSHOTS = UPDATE_SCREENSHOTS ? fileURLToPath(new URL('../../docs/screenshots/', import.meta.url)) : mkdtempSync(join(tmpdir(), 'namaskah-screenshots-'));
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let app: TestApp;
let browser: Browser;
let customerContext: BrowserContext;
let customer: Page;
let adminContext: BrowserContext;
let admin: Page;
let customerEmail = '';
// The scenario services' prices, read from the catalogue by the first test.
const prices = { test_success: 0, test_timeout: 0, test_no_numbers: 0 };
type ScenarioService = keyof typeof prices;
const pageProblems: string[] = [];

/** "$12.34" for 1234 (USD), "-$0.50" for -50: what the dashboard must show. */
function usd(minor: number): string {
  const abs = Math.abs(minor);
  const cents = String(abs % 100).padStart(2, '0');
  const dollars = String(Math.trunc(abs / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${minor < 0 ? '-' : ''}$${dollars}.${cents}`;
}

function uniqueEmail(label: string): string {
  return `e2e-${label}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

async function loadHarness(): Promise<StartTestApp> {
  // The harness lives with the backend's tests; NAMASKAH_E2E_HARNESS can point at another one.
  const specifier = process.env.NAMASKAH_E2E_HARNESS ?? new URL('../support/app.ts', import.meta.url).href;
  const harness = (await import(specifier)) as { startTestApp: StartTestApp };
  return harness.startTestApp;
}

function watch(page: Page, name: string): Page {
  page.on('pageerror', (error) => pageProblems.push(`${name}: uncaught ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to (load|apply|execute|connect)/i.test(text)) pageProblems.push(`${name}: CSP ${text}`);
  });
  return page;
}

async function newPage(context: BrowserContext, name: string): Promise<Page> {
  return watch(await context.newPage(), name);
}

/** Poll until the locator's text matches, with a helpful failure message. */
async function waitForText(locator: Locator, expected: RegExp | string, timeout = 15_000): Promise<string> {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    try {
      if ((await locator.count()) > 0) {
        last = (await locator.first().innerText({ timeout: 1000 })).trim();
        if (typeof expected === 'string' ? last === expected : expected.test(last)) return last;
      }
    } catch {
      /* detached while re-rendering: try again */
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`timed out after ${timeout} ms waiting for ${String(expected)}; last text was ${JSON.stringify(last)}`);
}

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeout: number, what: string): Promise<T> {
  const deadline = Date.now() + timeout;
  let value = await read();
  while (!ok(value)) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; last value ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    value = await read();
  }
  return value;
}

async function apiGet<T>(context: BrowserContext, path: string): Promise<T> {
  const response = await context.request.get(`${app.url}${path}`);
  assert.equal(response.status(), 200, `GET ${path} → ${response.status()} ${await response.text()}`);
  return (await response.json()) as T;
}

async function allPages<T>(context: BrowserContext, path: string): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const separator = path.includes('?') ? '&' : '?';
    const page: { items: T[]; next_cursor: string | null } = await apiGet(context, `${path}${cursor ? `${separator}cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

const verificationsOf = (context: BrowserContext) => allPages<Verification>(context, '/v1/verifications');
const transactionsOf = (context: BrowserContext) => allPages<Transaction>(context, '/v1/wallet/transactions');
const walletOf = (context: BrowserContext) => apiGet<Wallet>(context, '/v1/wallet');

async function expectHeaderBalances(page: Page, available: number, held: number): Promise<void> {
  await waitForText(page.locator('#balance-available'), usd(available), 20_000);
  await waitForText(page.locator('#balance-held'), usd(held), 20_000);
}

async function screenshot(page: Page, name: string, fullPage = false): Promise<void> {
  // Transient toasts would cover content; they are not part of the page being documented.
  await page.evaluate(() => {
    document.getElementById('toasts')?.replaceChildren();
    // A full-page capture at a scrolled position would paint the sticky header mid-page.
    window.scrollTo(0, 0);
  });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage });
}

async function goto(page: Page, hash: string): Promise<void> {
  await page.evaluate((h) => {
    location.hash = h;
  }, hash);
  await page.locator(`main[data-page]`).waitFor();
}

async function buy(page: Page, service: ScenarioService): Promise<void> {
  await goto(page, '#/buy');
  const select = page.getByLabel('Service');
  await select.waitFor();
  await select.selectOption(service);
  await waitForText(page.locator('#price'), usd(prices[service]!));
}

/** The newest card in "Your numbers". */
function newestCard(page: Page): Locator {
  return page.locator('#active-verifications .vcard').first();
}

async function cardFor(page: Page, id: string): Promise<Locator> {
  const card = page.locator(`.vcard[data-id="${id}"]`);
  await card.waitFor({ timeout: 15_000 });
  return card;
}

async function cancelThroughUi(card: Locator): Promise<void> {
  // A provider may refuse an early cancel (409 cancel_too_early); the card then says when to
  // retry and re-enables the button. Keep pressing until the cancel goes through.
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const button = card.getByRole('button', { name: 'Cancel and refund' });
    if ((await button.count()) === 0 || !(await button.isVisible())) return;
    if (await button.isEnabled()) {
      await button.click();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const state = await card.getAttribute('data-state');
      if (state !== 'waiting') return;
    } else {
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

before(async () => {
  const executablePath = process.env.CHROMIUM_PATH;
  assert.ok(executablePath, 'CHROMIUM_PATH is not set: run the browser tests with `node scripts/run-tests.mjs test/e2e`, which finds Chromium, or set it');
  mkdirSync(SCREENSHOTS, { recursive: true });
  const startTestApp = await loadHarness();
  app = await startTestApp({ verificationTtlSeconds: TTL_SECONDS });
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  customerContext = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US', timezoneId: 'UTC' });
  adminContext = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
  customer = await newPage(customerContext, 'customer');
  admin = await newPage(adminContext, 'admin');
});

after(async () => {
  await browser?.close();
  await app?.close();
  if (!UPDATE_SCREENSHOTS) rmSync(SCREENSHOTS, { recursive: true, force: true });
});

test('a customer signs up with the keyboard and lands on Buy with a zero balance', { timeout: 60_000 }, async () => {
  await customer.goto(`${app.url}/#/login`);
  await customer.getByRole('heading', { name: 'Log in' }).waitFor();
  await screenshot(customer, 'login');

  await customer.getByRole('link', { name: 'Create an account' }).click();
  await customer.getByRole('heading', { name: 'Create your account' }).waitFor();

  // Password too short: a clear message next to the field, nothing sent.
  customerEmail = uniqueEmail('customer');
  await customer.getByLabel('Email').focus();
  await customer.keyboard.type(customerEmail);
  await customer.keyboard.press('Tab');
  await customer.keyboard.type('short');
  await customer.keyboard.press('Enter');
  await waitForText(customer.locator('#password-error'), /at least 8 characters/);

  await customer.getByLabel('Password').fill('correct horse battery');
  await customer.keyboard.press('Enter');
  await customer.waitForURL(/#\/buy$/);
  await customer.getByRole('heading', { name: 'Buy a number' }).waitFor();
  await expectHeaderBalances(customer, 0, 0);
  await waitForText(customer.locator('#account-email'), customerEmail);

  // The services the scenarios need are in the catalogue with their prices.
  const catalogue = await apiGet<{ services: { service: string; country: string; price_minor: number; currency: string }[] }>(customerContext, '/v1/services');
  for (const s of catalogue.services) assert.equal(s.currency, 'USD');
  for (const service of Object.keys(prices) as ScenarioService[]) {
    const offer = catalogue.services.find((s) => s.service === service);
    assert.ok(offer && Number.isSafeInteger(offer.price_minor), `${service} is in the catalogue with an integer price`);
    prices[service] = offer.price_minor;
  }
  assert.ok(prices.test_success + 3 * prices.test_timeout < CREDIT_MINOR, 'the test credit covers the scenarios');
});

test('an operator credits the customer through the admin Users page, and the customer sees it live', { timeout: 60_000 }, async () => {
  // The customer has the wallet open, connected to the live stream, before the credit is made.
  await goto(customer, '#/wallet');
  await waitForText(customer.locator('#wallet-available'), usd(0));
  await customer.locator('#live-status[data-state="live"]').waitFor({ timeout: 15_000 });
  await customer.evaluate(() => {
    (window as unknown as Record<string, unknown>).__sameDocument = 'yes';
  });
  const customerNavigations: string[] = [];
  const onNavigated = (frame: Frame) => {
    if (frame === customer.mainFrame()) customerNavigations.push(frame.url());
  };
  customer.on('framenavigated', onNavigated);

  await admin.goto(`${app.url}/#/login`);
  await admin.getByLabel('Email').fill(app.admin.email);
  await admin.getByLabel('Password').fill(app.admin.password);
  await admin.getByRole('button', { name: 'Log in' }).click();
  await admin.getByRole('heading', { name: 'Buy a number' }).waitFor();
  await admin.getByRole('link', { name: 'Users' }).click();
  await admin.getByRole('heading', { name: 'Users' }).waitFor();

  await admin.getByLabel('Search users').fill(customerEmail);
  await admin.getByRole('button', { name: 'Search' }).click();
  const row = admin.locator(`#admin-users tr[data-email="${customerEmail}"]`);
  await row.waitFor();
  await waitForText(row.locator('[data-col="available"]'), usd(0));

  await row.getByRole('button', { name: /Credit \/ adjust/ }).click();
  // Validation: a reason is required and amounts are parsed exactly.
  await admin.getByLabel(/^Amount/).fill('10.005');
  await admin.getByRole('button', { name: 'Apply', exact: true }).click();
  await waitForText(admin.locator('#adjust-amount-error'), /at most 2 decimal places/);
  await waitForText(admin.locator('#adjust-reason-error'), /reason/i);

  const credits: Request[] = [];
  admin.on('request', (request) => {
    if (request.method() === 'POST' && request.url().includes('/credit')) credits.push(request);
  });
  await admin.getByLabel(/^Amount/).fill('10.00');
  await admin.getByLabel('Reason').fill('E2E top-up');
  await waitForText(admin.locator('#adjust-preview'), `Adds $10.00 to ${customerEmail}'s wallet.`);
  await admin.getByRole('button', { name: 'Credit $10.00' }).click();
  await waitForText(admin.locator('.notice-holder'), `Credited $10.00 to ${customerEmail}. Available balance is now $10.00.`);
  await waitForText(row.locator('[data-col="available"]'), usd(CREDIT_MINOR));
  await waitForText(row.locator('[data-col="balance"]'), usd(CREDIT_MINOR));
  assert.equal(credits.length, 1);
  const sent = credits[0];
  assert.ok(sent);
  assert.match(sent.headers()['idempotency-key'] ?? '', /^[0-9a-f-]{36}$/);
  assert.deepEqual(sent.postDataJSON(), { amount_minor: CREDIT_MINOR, reason: 'E2E top-up' });
  await screenshot(admin, 'admin-users');

  // The customer's open wallet shows the money without a reload or a navigation: exactly $10.00
  // available, nothing held, and the credit on top of the transactions.
  const wallet = await walletOf(customerContext);
  assert.deepEqual([wallet.available_minor, wallet.held_minor, wallet.balance_minor], [CREDIT_MINOR, 0, CREDIT_MINOR]);
  await expectHeaderBalances(customer, CREDIT_MINOR, 0);
  await waitForText(customer.locator('#wallet-available'), usd(CREDIT_MINOR));
  await waitForText(customer.locator('#wallet-balance'), usd(CREDIT_MINOR));
  await waitForText(customer.locator('#transactions tr[data-type="topup"] td.amount, #transactions tr[data-type="adjustment"] td.amount'), `+${usd(CREDIT_MINOR)}`);
  customer.off('framenavigated', onNavigated);
  assert.deepEqual(customerNavigations, [], 'the customer page did not navigate');
  assert.equal(await customer.evaluate(() => (window as unknown as Record<string, unknown>).__sameDocument), 'yes', 'the customer page was not reloaded');
});

test('buying test_success shows the number, then the code arrives live without a reload', { timeout: 60_000 }, async () => {
  await buy(customer, 'test_success');
  // The live stream is connected before buying.
  await customer.locator('#live-status[data-state="live"]').waitFor({ timeout: 15_000 });
  await customer.evaluate(() => {
    (window as unknown as Record<string, unknown>).__sameDocument = 'yes';
  });
  const before = await verificationsOf(customerContext);

  await customer.getByRole('button', { name: `Buy number · ${usd(prices.test_success)}` }).click();
  const created = await eventually(() => verificationsOf(customerContext), (list) => list.length === before.length + 1, 15_000, 'the new verification');
  const bought = created.find((v) => !before.some((b) => b.id === v.id))!;
  assert.equal(bought.service, 'test_success');
  const card = await cardFor(customer, bought.id);

  const code = await waitForText(card.locator('.vcard-code-value'), /\S+/, 20_000);
  await waitForText(card.locator('.badge[data-state]'), 'Code received');
  const stored = await apiGet<Verification>(customerContext, `/v1/verifications/${bought.id}`);
  assert.equal(stored.state, 'received');
  assert.equal(code, stored.code);
  assert.ok(stored.phone_number);
  await waitForText(card.locator('.vcard-number-value'), /\+\d[\d ]+/);
  await waitForText(card.locator('.vcard-money'), `Charged ${usd(prices.test_success)}.`);
  // Same document all along: the code came in over the live stream, not through a reload.
  assert.equal(await customer.evaluate(() => (window as unknown as Record<string, unknown>).__sameDocument), 'yes');
  // The code is in a polite live region so screen readers announce it.
  assert.equal(await card.locator('.vcard-code').getAttribute('aria-live'), 'polite');

  await expectHeaderBalances(customer, CREDIT_MINOR - prices.test_success, 0);
  await screenshot(customer, 'buy-live-code');
});

test('history lists the verification with its audit timeline', { timeout: 30_000 }, async () => {
  await goto(customer, '#/history');
  const item = customer.locator('#history-list .history-item').first();
  await item.waitFor();
  await waitForText(item.locator('.badge[data-state]'), 'Code received');
  await waitForText(item.locator('.money'), `${usd(prices.test_success)} charged`);
  await item.locator('summary', { hasText: 'Timeline' }).click();
  const timeline = item.locator('.timeline');
  await waitForText(timeline, /Purchase started[\s\S]*Number assigned[\s\S]*Code received/);
  await screenshot(customer, 'history-timeline');
});

test('a double click on Buy buys once: one verification, one hold, one request', { timeout: 60_000 }, async () => {
  const beforeVerifications = await verificationsOf(customerContext);
  const beforeHolds = (await transactionsOf(customerContext)).filter((t) => t.type === 'verification_hold');
  const posts: Request[] = [];
  const onRequest = (request: Request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/v1/verifications') posts.push(request);
  };
  customer.on('request', onRequest);

  await buy(customer, 'test_timeout');
  await customer.getByRole('button', { name: `Buy number · ${usd(prices.test_timeout)}` }).dblclick();
  await eventually(() => verificationsOf(customerContext), (list) => list.length > beforeVerifications.length, 15_000, 'the purchase');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  customer.off('request', onRequest);

  const afterVerifications = await verificationsOf(customerContext);
  const afterHolds = (await transactionsOf(customerContext)).filter((t) => t.type === 'verification_hold');
  assert.equal(afterVerifications.length, beforeVerifications.length + 1, 'exactly one verification');
  assert.equal(afterHolds.length, beforeHolds.length + 1, 'exactly one hold');
  const keys = new Set(posts.map((p) => p.headers()['idempotency-key']));
  assert.equal(keys.size, 1, 'every purchase request of this click carried the same Idempotency-Key');

  const bought = afterVerifications.find((v) => !beforeVerifications.some((b) => b.id === v.id))!;
  const hold = afterHolds.find((t) => t.verification_id === bought.id);
  assert.ok(hold, 'the hold belongs to the new verification');
  assert.equal(Math.abs(hold.amount_minor), prices.test_timeout);
  const card = await cardFor(customer, bought.id);
  await waitForText(card.locator('.badge[data-state]'), 'Waiting for SMS');
  await waitForText(card.locator('.vcard-countdown-text'), /^Expires in \d+:\d\d$/);
  await expectHeaderBalances(customer, CREDIT_MINOR - prices.test_success - prices.test_timeout, prices.test_timeout);
});

test('a purchase retried after a lost answer reuses its Idempotency-Key and buys once', { timeout: 60_000 }, async () => {
  const beforeVerifications = await verificationsOf(customerContext);
  const keys: string[] = [];
  let dropped = false;
  await customer.route('**/v1/verifications', async (route) => {
    const request = route.request();
    if (request.method() !== 'POST') return route.continue();
    keys.push(request.headers()['idempotency-key'] ?? '');
    if (!dropped) {
      // The server buys, but the answer never reaches the browser.
      dropped = true;
      await route.fetch();
      return route.abort('connectionreset');
    }
    return route.continue();
  });
  try {
    await buy(customer, 'test_timeout');
    const button = customer.getByRole('button', { name: `Buy number · ${usd(prices.test_timeout)}` });
    await button.click();
    await waitForText(customer.locator('#buy-error'), /Could not reach Namaskah[\s\S]*never be charged twice/);
    await button.click();
    await eventually(async () => keys.length, (n) => n >= 2, 10_000, 'the retried request');
  } finally {
    await customer.unroute('**/v1/verifications');
  }
  assert.equal(keys.length, 2);
  assert.equal(keys[0], keys[1], 'the retry sent the same Idempotency-Key');
  const afterVerifications = await verificationsOf(customerContext);
  assert.equal(afterVerifications.length, beforeVerifications.length + 1, 'the retry did not buy a second number');
  const bought = afterVerifications.find((v) => !beforeVerifications.some((b) => b.id === v.id))!;
  const card = await cardFor(customer, bought.id);
  await waitForText(card.locator('.badge[data-state]'), 'Waiting for SMS');
  assert.equal(await customer.locator('#buy-error').isVisible(), false, 'the error went away once the purchase was confirmed');
  await expectHeaderBalances(customer, CREDIT_MINOR - prices.test_success - 2 * prices.test_timeout, 2 * prices.test_timeout);
});

test('cancelling a waiting verification refunds it and the wallet shows the money back', { timeout: 90_000 }, async () => {
  const waiting = (await verificationsOf(customerContext)).filter((v) => v.state === 'waiting' && v.service === 'test_timeout');
  assert.equal(waiting.length, 2);
  await goto(customer, '#/buy');
  for (const v of waiting) {
    const card = await cardFor(customer, v.id);
    await cancelThroughUi(card);
    await waitForText(card.locator('.badge-refunded'), 'Refunded', 20_000);
    await waitForText(card.locator('.vcard-money'), `Refunded ${usd(prices.test_timeout)} to your wallet.`);
    const stored = await apiGet<Verification>(customerContext, `/v1/verifications/${v.id}`);
    assert.equal(stored.refunded, true);
    assert.ok(['cancelled', 'expired'].includes(stored.state), `settled as ${stored.state}`);
  }
  await expectHeaderBalances(customer, CREDIT_MINOR - prices.test_success, 0);
  const wallet = await walletOf(customerContext);
  assert.deepEqual([wallet.available_minor, wallet.held_minor], [CREDIT_MINOR - prices.test_success, 0]);
});

test('insufficient funds: a clear error, and the customer is not charged', { timeout: 60_000 }, async () => {
  const brokeContext = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US', timezoneId: 'UTC' });
  try {
    const broke = await newPage(brokeContext, 'broke');
    await broke.goto(`${app.url}/#/signup`);
    await broke.getByLabel('Email').fill(uniqueEmail('broke'));
    await broke.getByLabel('Password').fill('correct horse battery');
    await broke.getByRole('button', { name: 'Create account' }).click();
    await broke.getByRole('heading', { name: 'Buy a number' }).waitFor();
    await buy(broke, 'test_success');
    await waitForText(broke.locator('#balance-hint'), /not enough for this number/);
    await broke.getByRole('button', { name: `Buy number · ${usd(prices.test_success)}` }).click();
    await waitForText(broke.locator('#buy-error'), /Not enough balance — top up first\.[\s\S]*You were not charged\./);
    assert.equal(await broke.locator('#buy-error').getAttribute('role'), 'alert');
    await expectHeaderBalances(broke, 0, 0);
    assert.equal((await verificationsOf(brokeContext)).length, 0);
    assert.equal((await transactionsOf(brokeContext)).length, 0);
  } finally {
    await brokeContext.close();
  }
});

test('test_no_numbers: a clear error, and the customer is not charged', { timeout: 60_000 }, async () => {
  const available = CREDIT_MINOR - prices.test_success;
  await buy(customer, 'test_no_numbers');
  await customer.getByRole('button', { name: `Buy number · ${usd(prices.test_no_numbers)}` }).click();
  await waitForText(customer.locator('#buy-error'), /No numbers are available[\s\S]*You were not charged\./);
  await expectHeaderBalances(customer, available, 0);
  const wallet = await walletOf(customerContext);
  assert.deepEqual([wallet.available_minor, wallet.held_minor], [available, 0]);
  const failed = (await verificationsOf(customerContext)).filter((v) => v.service === 'test_no_numbers');
  for (const v of failed) {
    assert.equal(v.state, 'failed');
    // The failed purchase may also appear live in "Your numbers": it must not read like a charge.
    const card = customer.locator(`.vcard[data-id="${v.id}"]`);
    if ((await card.count()) > 0) await waitForText(card.locator('.vcard-money'), 'The purchase did not go through. You were not charged.');
  }
});

test('a test_timeout verification is refunded when its deadline passes', { timeout: 150_000 }, async () => {
  const available = CREDIT_MINOR - prices.test_success;
  const beforeVerifications = await verificationsOf(customerContext);
  await buy(customer, 'test_timeout');
  await customer.getByRole('button', { name: `Buy number · ${usd(prices.test_timeout)}` }).click();
  const list = await eventually(() => verificationsOf(customerContext), (l) => l.length === beforeVerifications.length + 1, 15_000, 'the purchase');
  const bought = list.find((v) => !beforeVerifications.some((b) => b.id === v.id))!;
  const card = await cardFor(customer, bought.id);
  await waitForText(card.locator('.vcard-countdown-text'), /^Expires in 0:\d\d$/);
  await expectHeaderBalances(customer, available - prices.test_timeout, prices.test_timeout);

  // The sweeper refunds within expires_at + 60 s; the card shows it without a reload.
  await waitForText(card.locator('.badge-refunded'), 'Refunded', TTL_SECONDS * 1000 + 75_000);
  await waitForText(card.locator('.badge[data-state]'), 'Expired');
  await waitForText(card.locator('.vcard-money'), `Refunded ${usd(prices.test_timeout)} to your wallet.`);
  await expectHeaderBalances(customer, available, 0);
  const stored = await apiGet<Verification>(customerContext, `/v1/verifications/${bought.id}`);
  assert.deepEqual([stored.state, stored.refunded], ['expired', true]);
});

test('the wallet page shows exact balances and every transaction', { timeout: 30_000 }, async () => {
  const available = CREDIT_MINOR - prices.test_success;
  await goto(customer, '#/wallet');
  await waitForText(customer.locator('#wallet-available'), usd(available));
  await waitForText(customer.locator('#wallet-held'), usd(0));
  const transactions = await transactionsOf(customerContext);
  await eventually(async () => customer.locator('#transactions tr').count(), (n) => n === transactions.length, 10_000, 'all transactions listed');
  for (const t of transactions) {
    const row = customer.locator(`#transactions tr[data-id="${t.id}"]`);
    if (t.type === 'verification_charge' && t.amount_minor === 0) {
      // A capture does not move the available balance again; the row shows what was paid.
      await waitForText(row.locator('td.amount'), new RegExp(`^\\${usd(t.gross_minor ?? 0)}\\s+paid from hold$`));
    } else {
      await waitForText(row.locator('td.amount'), t.amount_minor > 0 ? `+${usd(t.amount_minor)}` : usd(t.amount_minor));
    }
  }
  const charges = transactions.filter((t) => t.type === 'verification_charge');
  assert.equal(charges.length, 1, 'only the verification whose code arrived was charged');
  const refunds = transactions.filter((t) => t.type === 'verification_refund');
  assert.ok(refunds.length >= 3, 'two cancels and one expiry were refunded');
  await screenshot(customer, 'wallet');
});

test('notifications can be marked read, and API keys created once, listed and revoked', { timeout: 60_000 }, async () => {
  await goto(customer, '#/notifications');
  const unread = customer.locator('#notification-list .notification.is-unread');
  await eventually(async () => unread.count(), (n) => n > 0, 15_000, 'an unread notification');
  const before = await unread.count();
  await unread.first().getByRole('button', { name: /Mark read/ }).click();
  await eventually(async () => unread.count(), (n) => n === before - 1, 10_000, 'one fewer unread');

  await goto(customer, '#/api-keys');
  await customer.getByLabel('Key name').fill('e2e-bot');
  await customer.getByRole('button', { name: 'Create key' }).click();
  const secret = await waitForText(customer.locator('#new-api-key'), /\S{16,}/);
  const row = customer.locator('#api-keys tr', { hasText: 'e2e-bot' });
  await row.waitFor();
  // The key works as a bearer token.
  const me = await fetch(`${app.url}/v1/me`, { headers: { Authorization: `Bearer ${secret}` } });
  assert.equal(me.status, 200);
  await customer.getByRole('button', { name: 'I have saved it' }).click();
  assert.equal(await customer.locator('#new-api-key').count(), 0, 'the key is not shown again');
  await row.getByRole('button', { name: /Revoke/ }).click();
  await row.getByRole('button', { name: 'Yes, revoke' }).click();
  await waitForText(customer.locator('#api-keys tr', { hasText: 'e2e-bot' }).locator('.badge'), 'Revoked');
  const afterRevoke = await fetch(`${app.url}/v1/me`, { headers: { Authorization: `Bearer ${secret}` } });
  assert.equal(afterRevoke.status, 401);
});

test('the operator ops page shows health, diagnose and a reconcile dry run', { timeout: 60_000 }, async () => {
  // What GET /health tells a signed-in operator: the same checks the page must show.
  const health = await apiGet<{ status: string; degraded: boolean; checks: { database: { ok: boolean }; engine: { ok: boolean }; breakers: Record<string, { state: string } | boolean> } }>(adminContext, '/health');
  assert.deepEqual([health.status, health.degraded, health.checks.database.ok, health.checks.engine.ok], ['up', false, true, true]);
  assert.deepEqual(health.checks.breakers, { ok: true, sandbox: { state: 'closed' } });

  await goto(admin, '#/admin/ops');
  await admin.getByRole('heading', { name: 'Operations' }).waitFor();
  await waitForText(admin.locator('#health'), /^Overall\s+Ok\s+Database\s+Reachable\s+Engine lag\s+\d+(\.\d)? s\s+Providers/);
  await waitForText(admin.locator('#breakers tbody'), /^sandbox\s+Closed — healthy$/);
  await waitForText(admin.locator('#diagnose-summary'), /^All \d+ checks passed\.$/);
  assert.ok((await admin.locator('#diagnose-checks tbody tr').count()) > 0);
  await admin.getByLabel('Days to look back').fill('7');
  await admin.getByRole('button', { name: 'Dry run' }).click();
  await waitForText(admin.locator('#reconcile-summary'), 'Dry run — nothing was changed · last 7 days');
  await screenshot(admin, 'admin-ops', true);

  // A 404 is shown as the error it is, not as a feature "not available yet": here the server's
  // own answer for a route it does not have stands in for the health endpoint.
  await admin.route('**/health', async (route) => route.fulfill({ response: await route.fetch({ url: `${app.url}/v1/no-such-route` }) }));
  try {
    await admin.getByRole('button', { name: 'Refresh' }).click();
    await waitForText(admin.locator('#health [role="alert"]'), 'Not found. It may have been removed, or it belongs to another account.');
  } finally {
    await admin.unroute('**/health');
  }

  // The operator's verification search finds the customer's purchases.
  await goto(admin, '#/admin/verifications');
  await admin.getByLabel('Customer email').fill(customerEmail);
  await admin.getByRole('button', { name: 'Search' }).click();
  await waitForText(admin.locator('#admin-verification-list'), new RegExp(customerEmail.replace(/[.+]/g, '\\$&')));
});

test('on a phone-sized screen nothing scrolls sideways and the menu works', { timeout: 60_000 }, async () => {
  const phoneContext = await browser.newContext({
    viewport: { width: 375, height: 740 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    locale: 'en-US',
    timezoneId: 'UTC',
    storageState: await customerContext.storageState(),
  });
  try {
    const phone = await newPage(phoneContext, 'phone');
    await phone.goto(`${app.url}/#/buy`);
    await phone.getByRole('heading', { name: 'Buy a number' }).waitFor();
    await expectHeaderBalances(phone, CREDIT_MINOR - prices.test_success, 0);
    for (const hash of ['#/buy', '#/history', '#/wallet', '#/notifications', '#/api-keys']) {
      await goto(phone, hash);
      await phone.locator('.page-title').waitFor();
      await phone.waitForLoadState('networkidle').catch(() => {});
      const [scrollWidth, clientWidth] = await phone.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      assert.ok(scrollWidth <= clientWidth, `${hash}: page is ${scrollWidth}px wide in a ${clientWidth}px viewport`);
    }
    // Navigation is behind a Menu button on small screens.
    await goto(phone, '#/buy');
    const menu = phone.getByRole('button', { name: 'Menu' });
    assert.equal(await menu.getAttribute('aria-expanded'), 'false');
    assert.equal(await phone.getByRole('link', { name: 'Wallet' }).isVisible(), false);
    await menu.click();
    assert.equal(await menu.getAttribute('aria-expanded'), 'true');
    await phone.getByRole('link', { name: 'Wallet' }).click();
    await phone.getByRole('heading', { name: 'Wallet' }).waitFor();
    await goto(phone, '#/buy');
    await phone.locator('#active-verifications .vcard').first().waitFor();
    await screenshot(phone, 'mobile-buy', true);
  } finally {
    await phoneContext.close();
  }
});

test('logging out returns to the login page, and no page broke the CSP or threw', { timeout: 30_000 }, async () => {
  await customer.getByRole('button', { name: 'Log out' }).click();
  await customer.getByRole('heading', { name: 'Log in' }).waitFor();
  await waitForText(customer.locator('main'), /You are logged out\./);
  const me = await customerContext.request.get(`${app.url}/v1/me`);
  assert.equal(me.status(), 401);
  assert.deepEqual(pageProblems, []);
});
