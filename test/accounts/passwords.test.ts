import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generatePassword, hashPassword, verifyPassword } from '../../src/accounts/passwords.ts';
import { hashToken, newToken, safeEqual } from '../../src/accounts/tokens.ts';

describe('password hashing', () => {
  test('scrypt hash carries its parameters and a per-password salt', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    assert.match(a, /^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a, b, 'same password, different salt, different hash');
    assert.ok(!a.includes('correct horse'));
  });

  test('verifies the right password only', async () => {
    const stored = await hashPassword('correct horse');
    assert.equal(await verifyPassword('correct horse', stored), true);
    assert.equal(await verifyPassword('correct horsf', stored), false);
    assert.equal(await verifyPassword('', stored), false);
  });

  test('malformed or tampered hashes never verify (and never allocate absurd memory)', async () => {
    const stored = await hashPassword('pw-12345678');
    const parts = stored.split('$');
    for (const bad of [
      '',
      'plain-text',
      parts.slice(0, 5).join('$'),
      ['bcrypt', ...parts.slice(1)].join('$'),
      ['scrypt', String(2 ** 30), ...parts.slice(2)].join('$'),
      ['scrypt', '1000', ...parts.slice(2)].join('$'),
      [...parts.slice(0, 5), 'AAAA'].join('$'),
    ]) {
      assert.equal(await verifyPassword('pw-12345678', bad), false, bad);
    }
  });

  test('generated passwords are long and random', () => {
    const a = generatePassword();
    assert.equal(a.length, 24);
    assert.notEqual(a, generatePassword());
  });
});

describe('tokens', () => {
  test('tokens carry their prefix and 256 random bits; only hashes are comparable', () => {
    const t = newToken('nsk_');
    assert.match(t, /^nsk_[A-Za-z0-9_-]{43}$/);
    assert.match(hashToken(t), /^[0-9a-f]{64}$/);
    assert.notEqual(hashToken(t), hashToken(newToken('nsk_')));
    assert.equal(safeEqual('abc', 'abc'), true);
    assert.equal(safeEqual('abc', 'abd'), false);
    assert.equal(safeEqual('abc', 'abcd'), false);
  });
});
