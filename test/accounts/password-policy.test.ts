import { test } from 'node:test';
import assert from 'node:assert/strict';
import { passwordProblem } from '../../src/accounts/password-policy.ts';

test('a password is refused, saying why, when it is too short or long, blank, common or holds the email', async () => {
  const cases: [password: string, email: string, why: RegExp | undefined][] = [
    ['short', 'a@example.test', /8-200 characters/],
    ['x'.repeat(201), 'a@example.test', /8-200 characters/],
    [' '.repeat(8), 'a@example.test', /only whitespace/],
    ['\t\n \u00a0\u3000   ', 'a@example.test', /only whitespace/],
    ['password', 'a@example.test', /most commonly used/],
    ['PASSWORD1', 'a@example.test', /most commonly used/],
    ['qwertyuiop', 'a@example.test', /most commonly used/],
    ['iloveyou', 'a@example.test', /most commonly used/],
    ['Alice@Example.test', 'alice@example.test', /contain your email address/],
    ['my alice@example.test!', 'Alice@Example.TEST', /contain your email address/],
    ['xx-alice-2026', 'alice@example.test', /part of your email address before the @/],
    // NFKC: full-width letters are the same letters.
    ['ａｌｉｃｅ-2026-x', 'alice@example.test', /part of your email address before the @/],
    // Short local parts say nothing: "jo" is in too many good passwords.
    ['jolly-roger-sails', 'jo@example.test', undefined],
    ['correct horse battery staple', 'alice@example.test', undefined],
    [' leading-space-ok', 'alice@example.test', undefined],
  ];
  for (const [password, email, why] of cases) {
    const problem = await passwordProblem(password, email);
    if (why === undefined) assert.equal(problem, undefined, password);
    else assert.match(problem ?? '', why, JSON.stringify(password));
    if (problem) assert.match(problem, /^password /, 'the message names the field');
  }
});
