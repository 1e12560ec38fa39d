import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * The soak's settings: one typed object, read once from the command line and the environment
 * (flags win over SOAK_* variables, which win over the chosen preset). Two presets:
 *
 * - short: a few minutes on a 2-core machine, a few thousand verifications, one engine blackout;
 * - full: at least 100,000 verifications, four blackouts, kills every 15 s on average.
 */
export type Preset = 'short' | 'full';

export interface SoakSettings {
  preset: Preset;
  /** Stop buying once this many verifications exist (rows created by purchases). */
  verifications: number;
  /** ... or once the load has run this long, whichever comes first. */
  maxSeconds: number;
  apis: number;
  engines: number;
  /** Customer loops buying at once. */
  concurrency: number;
  customers: number;
  /** Customers funded for only a couple of purchases: their purchases meet 402 often. */
  poorCustomers: number;
  /** Mean seconds between two kill -9s (exponentially distributed); 0 turns the kills off. */
  killEverySeconds: number;
  /** Engine blackouts: every engine killed, late SMS sent past deadlines, engines restarted. */
  blackouts: number;
  /** test_late and test_timeout verifications bought in each blackout (each). */
  blackoutSize: number;
  ttlSeconds: number;
  sandboxDelayMs: number;
  seed: number;
  /** The soak's own database, created and dropped through BENCH_PG_URL's administrative connection. */
  database: string;
  keepDatabase: boolean;
  resultsDir: string;
  logDir: string;
}

const presets: Record<Preset, Omit<SoakSettings, 'preset' | 'seed' | 'database' | 'keepDatabase' | 'resultsDir' | 'logDir'>> = {
  short: {
    verifications: 4_000,
    maxSeconds: 120,
    apis: 3,
    engines: 2,
    concurrency: 8,
    customers: 40,
    poorCustomers: 6,
    killEverySeconds: 7,
    blackouts: 1,
    blackoutSize: 8,
    ttlSeconds: 20,
    sandboxDelayMs: 3_000,
  },
  full: {
    verifications: 100_000,
    // Bound by the count, not the clock: a slow or busy machine takes longer, not fewer.
    maxSeconds: 24 * 3600,
    apis: 3,
    engines: 2,
    concurrency: 12,
    customers: 120,
    poorCustomers: 12,
    killEverySeconds: 15,
    blackouts: 4,
    blackoutSize: 10,
    ttlSeconds: 20,
    sandboxDelayMs: 3_000,
  },
};

/** Flag name → environment variable → settings field, for every number. */
const numbers = {
  verifications: 'SOAK_VERIFICATIONS',
  seconds: 'SOAK_SECONDS',
  apis: 'SOAK_APIS',
  engines: 'SOAK_ENGINES',
  concurrency: 'SOAK_CONCURRENCY',
  customers: 'SOAK_CUSTOMERS',
  'poor-customers': 'SOAK_POOR_CUSTOMERS',
  'kill-every': 'SOAK_KILL_EVERY_SECONDS',
  blackouts: 'SOAK_BLACKOUTS',
  'blackout-size': 'SOAK_BLACKOUT_SIZE',
  ttl: 'SOAK_TTL_SECONDS',
  'sandbox-delay-ms': 'SOAK_SANDBOX_DELAY_MS',
  seed: 'SOAK_SEED',
} as const;
type NumberFlag = keyof typeof numbers;

const field: Record<NumberFlag, keyof SoakSettings> = {
  verifications: 'verifications',
  seconds: 'maxSeconds',
  apis: 'apis',
  engines: 'engines',
  concurrency: 'concurrency',
  customers: 'customers',
  'poor-customers': 'poorCustomers',
  'kill-every': 'killEverySeconds',
  blackouts: 'blackouts',
  'blackout-size': 'blackoutSize',
  ttl: 'ttlSeconds',
  'sandbox-delay-ms': 'sandboxDelayMs',
  seed: 'seed',
};

/** At least: one API process (to buy through), one engine, one customer loop and customer; a TTL the server accepts. */
const minimum: Partial<Record<NumberFlag, number>> = { apis: 1, engines: 1, concurrency: 1, customers: 1, verifications: 1, seconds: 1, ttl: 10 };
/** A blackout customer may hold at most MAX_ACTIVE_VERIFICATIONS (20) at once: two scenarios of ten. */
const maximum: Partial<Record<NumberFlag, number>> = { 'blackout-size': 10 };

export class SettingsError extends Error {}

export const usage = `usage: npm run soak [-- --full | --short] [options]

  --short                 the default: a few minutes, a few thousand verifications
  --full                  at least 100,000 verifications (about an hour or more on 2 cores)
  --verifications N       stop buying at N verifications            (SOAK_VERIFICATIONS)
  --seconds N             ... or after N seconds of load             (SOAK_SECONDS)
  --apis N                API processes, serve --no-worker           (SOAK_APIS)
  --engines N             engine processes, worker                   (SOAK_ENGINES)
  --concurrency N         customer loops buying at once              (SOAK_CONCURRENCY)
  --customers N           funded customers                           (SOAK_CUSTOMERS)
  --poor-customers N      customers funded for two purchases         (SOAK_POOR_CUSTOMERS)
  --kill-every S          mean seconds between kill -9s, 0 = none    (SOAK_KILL_EVERY_SECONDS)
  --blackouts N           engine blackouts with late SMS             (SOAK_BLACKOUTS)
  --blackout-size N       test_late + test_timeout bought per blackout, each (SOAK_BLACKOUT_SIZE, max 10)
  --ttl S                 VERIFICATION_TTL_SECONDS of the servers    (SOAK_TTL_SECONDS)
  --sandbox-delay-ms MS   SANDBOX_DELAY_MS of the servers            (SOAK_SANDBOX_DELAY_MS)
  --seed N                seed of the customers' choices             (SOAK_SEED)
  --keep-database         keep the soak database for inspection      (SOAK_KEEP_DATABASE=1)

  BENCH_PG_URL (administrative connection, default postgres://postgres@127.0.0.1:5432/test),
  SOAK_DATABASE (the soak's own database, namaskah_soak), SOAK_RESULTS_DIR (scripts/soak/results),
  SOAK_LOG_DIR (the processes' logs; default a new directory under the system temp directory).
`;

function parseNumber(name: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0) throw new SettingsError(`${name} must be a non-negative number, got "${raw}"`);
  return n;
}

export function parseSettings(argv: string[], env: Record<string, string | undefined>, now: Date): SoakSettings | 'help' {
  const { values } = parseArgs({
    args: argv.filter((a) => a !== '--'),
    options: {
      full: { type: 'boolean' },
      short: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      'keep-database': { type: 'boolean' },
      ...Object.fromEntries(Object.keys(numbers).map((k) => [k, { type: 'string' as const }])),
    },
    strict: true,
  });
  if (values.help) return 'help';
  if (values.full && values.short) throw new SettingsError('choose one of --full and --short');
  const fromEnv = env.SOAK_SETTING;
  if (fromEnv !== undefined && fromEnv !== 'short' && fromEnv !== 'full') throw new SettingsError(`SOAK_SETTING must be short or full, got "${fromEnv}"`);
  const preset: Preset = values.full ? 'full' : values.short ? 'short' : (fromEnv ?? 'short');

  const settings: SoakSettings = {
    preset,
    ...presets[preset],
    seed: now.getTime() % 2_147_483_647,
    database: env.SOAK_DATABASE || 'namaskah_soak',
    keepDatabase: Boolean(values['keep-database']) || env.SOAK_KEEP_DATABASE === '1',
    resultsDir: env.SOAK_RESULTS_DIR || join(import.meta.dirname, 'results'),
    logDir: env.SOAK_LOG_DIR || join(tmpdir(), `namaskah-soak-${now.toISOString().replace(/[:.]/g, '-')}`),
  };
  for (const [flag, variable] of Object.entries(numbers) as [NumberFlag, string][]) {
    const raw = (values as Record<string, unknown>)[flag] ?? env[variable];
    if (typeof raw !== 'string') continue;
    const n = Math.floor(parseNumber(`--${flag} (${variable})`, raw));
    const low = minimum[flag];
    const high = maximum[flag];
    if (low !== undefined && n < low) throw new SettingsError(`--${flag} must be at least ${low}`);
    if (high !== undefined && n > high) throw new SettingsError(`--${flag} must be at most ${high}`);
    (settings as unknown as Record<string, number>)[field[flag]] = n;
  }
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(settings.database)) throw new SettingsError('SOAK_DATABASE must be a plain lower-case identifier');
  return settings;
}
