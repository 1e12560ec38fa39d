// The account flows in headless Chromium against a real server whose mail goes over SMTP to a real
// in-process SMTP server: sign up → verify by the link the SMTP server received → turn on
// two-factor sign-in (QR code, code from otplib) → sign out → reset the password by the emailed
// link → sign in with the new password and a TOTP code from otplib.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generate } from 'otplib';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestApp, type TestApp } from '../support/app.ts';
import { linkToken, startSmtpServer, type TestSmtpServer } from '../support/smtp.ts';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let app: TestApp;
let smtp: TestSmtpServer;
let browser: Browser;
let page: Page;
const pageProblems: string[] = [];

before(async () => {
  const executablePath = process.env.CHROMIUM_PATH;
  assert.ok(executablePath, 'CHROMIUM_PATH is not set: run the browser tests with `node scripts/run-tests.mjs test/e2e`, which finds Chromium, or set it');
  smtp = await startSmtpServer();
  app = await startTestApp({ worker: false, env: { SMTP_URL: smtp.url } });
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
  page = await context.newPage();
  page.on('pageerror', (error) => pageProblems.push(`uncaught ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to (load|apply|execute|connect)/i.test(message.text())) pageProblems.push(`CSP ${message.text()}`);
  });
});

after(async () => {
  await browser?.close();
  await app?.close();
  await smtp?.close();
});

/** A TOTP code for the step after the current one: the current step's code may already be spent. */
async function nextCode(secret: string): Promise<string> {
  return generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });
}

test('sign up, verify by email, two-factor on, sign out, reset by email, sign in with TOTP', { timeout: 120_000 }, async () => {
  const email = `e2e-account-${Date.now()}@example.com`;
  const firstPassword = 'first-Pass-word-1';
  const newPassword = 'second-Pass-word-2';

  await page.goto(`${app.url}/#/signup`);
  await page.fill('#email', email);
  await page.fill('#password', firstPassword);
  await page.click('button[type=submit]');
  await page.waitForURL(/#\/buy$/);

  // The verification link, as the SMTP server received it.
  const verification = await smtp.waitFor(email, /Confirm your email/);
  const { link: verifyLink } = linkToken(verification, 'verify-email');
  await page.goto(verifyLink);
  await page.locator('#verify-status', { hasText: `${email} is verified` }).waitFor();
  assert.ok(!page.url().includes('token='), 'the token leaves the address bar');

  await page.goto(`${app.url}/#/account`);
  await page.locator('#email-state', { hasText: 'Verified' }).waitFor();
  await page.click('#enrol-two-factor');
  const qr = page.locator('#two-factor-qr');
  await qr.waitFor();
  assert.ok(await qr.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0), 'the QR code renders under the CSP');
  const secret = (await page.locator('#two-factor-secret').innerText()).trim();
  await page.fill('#enrol-code', await generate({ secret }));
  await page.click('#two-factor button[type=submit]');
  await page.locator('#recovery-codes li').first().waitFor();
  assert.equal(await page.locator('#recovery-codes li').count(), 10);

  await page.click('#logout-button');
  await page.waitForURL(/#\/login$/);

  await page.click('a[href="#/forgot-password"]');
  await page.fill('#email', email);
  await page.click('button[type=submit]');
  await page.locator('#reset-requested').waitFor();
  const reset = await smtp.waitFor(email, /Reset your password/);
  const { link: resetLink } = linkToken(reset, 'reset-password');
  await page.goto(resetLink);
  await page.fill('#new-password', newPassword);
  await page.click('button[type=submit]');
  await page.waitForURL(/#\/login$/);
  await page.locator('.alert', { hasText: 'Log in with the new password' }).waitFor();

  await page.fill('#email', email);
  await page.fill('#password', newPassword);
  await page.click('button[type=submit]');
  await page.locator('#totp-code').waitFor({ state: 'visible' });
  await page.fill('#totp-code', await nextCode(secret));
  await page.click('button[type=submit]');
  await page.waitForURL(/#\/buy$/);

  await page.goto(`${app.url}/#/account`);
  await page.locator('#two-factor-state', { hasText: 'On' }).waitFor();
  assert.equal(await page.locator('#sessions tr').count(), 1, 'the reset ended every earlier session');
  assert.deepEqual(pageProblems, []);
});
