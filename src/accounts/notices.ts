import type { Mail } from '../mail/mailer.ts';

/**
 * The words of every account email (pure). Links point into the dashboard with the token in the
 * URL fragment, which browsers never send to a server, so the token cannot land in an access log
 * or a Referer header.
 */
export interface Links {
  /** The dashboard's base address: PUBLIC_URL, or the server's own. */
  base: string;
}

function dashboardLink(links: Links, route: string, token: string): string {
  return `${links.base.replace(/\/+$/, '')}/#/${route}?token=${encodeURIComponent(token)}`;
}

export function verificationMail(links: Links, to: string, token: string, ttlHours: number): Mail {
  return {
    to,
    subject: 'Confirm your email address',
    text: [
      'Confirm that this address belongs to your Namaskah account by opening this link:',
      '',
      dashboardLink(links, 'verify-email', token),
      '',
      `The link works once, for ${ttlHours} hours. If you did not create an account, ignore this email.`,
    ].join('\n'),
  };
}

export function passwordResetMail(links: Links, to: string, token: string, ttlMinutes: number): Mail {
  return {
    to,
    subject: 'Reset your password',
    text: [
      'Someone (hopefully you) asked to reset the password of your Namaskah account. Choose a new one here:',
      '',
      dashboardLink(links, 'reset-password', token),
      '',
      `The link works once, for ${ttlMinutes} minutes. Resetting signs you out everywhere.`,
      'If you did not ask for this, ignore this email: your password stays as it is.',
    ].join('\n'),
  };
}

/** Sign-up with an address that already has an account: the owner hears of it, the caller learns nothing new by mail. */
export function existingAccountMail(links: Links, to: string): Mail {
  return {
    to,
    subject: 'Someone tried to sign up with your address',
    text: [
      'Someone tried to create a Namaskah account with this email address, which already has one.',
      `If it was you, sign in instead, or reset your password at ${links.base.replace(/\/+$/, '')}/#/forgot-password`,
      'If it was not you, nothing has changed.',
    ].join('\n'),
  };
}

export interface SecurityNotice {
  title: string;
  body: string;
}

export function newDeviceNotice(origin: { userAgent?: string; address?: string }, at: Date): SecurityNotice {
  return {
    title: 'New sign-in to your account',
    body:
      `Your account was signed in to from a device it has not used before (${origin.userAgent ?? 'unknown device'}, ` +
      `address ${origin.address ?? 'unknown'}) at ${at.toISOString()}. If it was not you, change your password and ` +
      'sign out everywhere from your account page.',
  };
}

export function newApiKeyNotice(name: string, prefix: string, at: Date): SecurityNotice {
  return {
    title: 'A new API key was created',
    body:
      `An API key named "${name}" (${prefix}…) was created for your account at ${at.toISOString()}. ` +
      'If it was not you, revoke it on the API keys page and change your password.',
  };
}

export function passwordChangedNotice(how: 'changed' | 'reset', at: Date): SecurityNotice {
  return {
    title: how === 'reset' ? 'Your password was reset' : 'Your password was changed',
    body:
      `The password of your account was ${how} at ${at.toISOString()}` +
      (how === 'reset' ? ' and every session was signed out. ' : '; your other sessions were signed out. ') +
      'If it was not you, reset it again now and contact support.',
  };
}

export function twoFactorNotice(on: boolean, at: Date): SecurityNotice {
  return {
    title: on ? 'Two-factor sign-in is on' : 'Two-factor sign-in was turned off',
    body: on
      ? `Two-factor sign-in was turned on for your account at ${at.toISOString()}. Keep your recovery codes somewhere safe.`
      : `Two-factor sign-in was turned off for your account at ${at.toISOString()}. If it was not you, change your password now.`,
  };
}

export function noticeMail(to: string, notice: SecurityNotice): Mail {
  return { to, subject: notice.title, text: notice.body };
}
