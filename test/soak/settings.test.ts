import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSettings, SettingsError, type SoakSettings } from '../../scripts/soak/settings.ts';

const now = new Date('2026-03-01T12:00:00Z');
const parse = (argv: string[], env: Record<string, string> = {}) => parseSettings(argv, env, now) as SoakSettings;

describe('soak settings', () => {
  test('short by default; --full (or SOAK_SETTING=full) drives at least 100,000 verifications', () => {
    const short = parse([]);
    assert.equal(short.preset, 'short');
    assert.equal(short.verifications, 4_000);
    assert.equal(short.maxSeconds, 120);
    assert.equal(short.blackouts, 1);
    for (const full of [parse(['--full']), parse([], { SOAK_SETTING: 'full' })]) {
      assert.equal(full.preset, 'full');
      assert.ok(full.verifications >= 100_000);
      assert.equal(full.blackouts, 4);
    }
  });

  test('a flag wins over its SOAK_* variable, which wins over the preset', () => {
    const s = parse(['--', '--apis', '4', '--kill-every', '0'], { SOAK_APIS: '2', SOAK_ENGINES: '3', SOAK_SEED: '42', SOAK_KEEP_DATABASE: '1' });
    assert.deepEqual([s.apis, s.engines, s.killEverySeconds, s.seed, s.keepDatabase], [4, 3, 0, 42, true]);
  });

  test('nonsense is refused with the name of the setting', () => {
    assert.throws(() => parse(['--apis', '0']), (e: unknown) => e instanceof SettingsError && /--apis must be at least 1/.test(e.message));
    assert.throws(() => parse([], { SOAK_TTL_SECONDS: 'soon' }), (e: unknown) => e instanceof SettingsError && /SOAK_TTL_SECONDS/.test(e.message));
    assert.throws(() => parse(['--blackout-size', '11']), /at most 10/);
    assert.throws(() => parse(['--full', '--short']), /choose one/);
    assert.throws(() => parse([], { SOAK_DATABASE: 'x; DROP DATABASE test' }), /plain lower-case identifier/);
    assert.throws(() => parse(['--verbose']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
  });

  test('--help asks for the usage text', () => {
    assert.equal(parseSettings(['--help'], {}, now), 'help');
  });
});
