import { resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { generatePassword } from '../accounts/passwords.ts';
import {
  IDEMPOTENCY_KEY_PATTERN,
  IDEMPOTENCY_KEY_RULE,
  isValidEmail,
  MAX_REASON_LENGTH,
  normalizeEmail,
  PASSWORD_MAX_LENGTH,
  PASSWORD_MIN_LENGTH,
} from '../accounts/policy.ts';
import { systemClock } from '../clock.ts';
import { ConfigError, loadConfig, redactUrl, type Config } from '../config.ts';
import { DataDirLockedError } from '../db/lock.ts';
import { migrationStatus, SchemaNewerThanCodeError, type MigrationStatus } from '../db/migrate.ts';
import { scrubSecrets } from '../logging.ts';
import { formatMinor } from '../money.ts';
import { parseMajorAmount } from './amount.ts';
import type { AdminUserResource } from '../accounts/resource.ts';
import { CommandFailure, UsageError } from './errors.ts';
import type { CliIo } from './io.ts';
import { registerCatalogueCommands } from './catalogue.ts';
import { registerOpsCommands } from './ops.ts';
import { registerBackupCommands } from './backup.ts';


const line = (text: string) => `${text}\n`;

function configFrom(io: CliIo): Config {
  return loadConfig(io.env);
}

function where(config: Config): string {
  return config.DATABASE_URL ? `PostgreSQL ${redactUrl(config.DATABASE_URL)}` : `embedded database in ${resolve(config.DATA_DIR)}`;
}

function checkEmail(email: string): string {
  if (!isValidEmail(email)) throw new UsageError(`"${email}" is not a valid email address`);
  return normalizeEmail(email);
}

/** Says what runs where, then runs until SIGINT/SIGTERM and stops it. */
async function runUntilShutdown(io: CliIo, running: { close(): Promise<void> }, banner: string): Promise<void> {
  io.stderr(line(`${banner}; Ctrl-C stops it`));
  const signal = await io.waitForShutdown();
  io.stderr(line(`${signal}: shutting down`));
  await running.close();
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  return rows.map((r) => r.map((cell, col) => cell.padEnd(widths[col]!)).join('  ').trimEnd()).join('\n');
}

/** `migrate --status`: exit 1 when this release cannot run against the database (a newer release changed it incompatibly). */
function printMigrationStatus(io: CliIo, place: string, status: MigrationStatus, json: boolean): void {
  const iso = (d: Date) => d.toISOString();
  if (json) {
    io.stdout(
      line(
        JSON.stringify(
          {
            applied: status.applied.map((m) => ({ version: m.version, applied_at: iso(m.appliedAt) })),
            pending: status.pending,
            newer: status.newer.map((m) => ({
              version: m.version,
              applied_at: iso(m.appliedAt),
              breaks_previous_release: m.breaksPreviousRelease !== false,
            })),
            runnable: status.incompatible.length === 0,
          },
          null,
          2,
        ),
      ),
    );
  } else {
    io.stdout(
      line(`${place}: ${status.applied.length} applied, ${status.pending.length} pending, ${status.newer.length} newer than this release`),
    );
    const listed = [
      ...status.applied.map((m) => [m.version, 'applied', iso(m.appliedAt)]),
      ...status.pending.map((version) => [version, 'pending', '']),
      ...status.newer.map((m) => [
        m.version,
        m.breaksPreviousRelease === false ? 'newer (additive: this release still runs)' : 'newer (breaks this release)',
        iso(m.appliedAt),
      ]),
    ];
    if (listed.length > 0) io.stdout(line(table([['VERSION', 'STATE', 'APPLIED AT'], ...listed])));
  }
  if (status.incompatible.length > 0) throw new CommandFailure(new SchemaNewerThanCodeError(status.incompatible).message);
}

function buildProgram(io: CliIo): Command {
  const clock = io.clock ?? systemClock;
  const program = new Command('namaskah')
    .description('Namaskah: temporary numbers for one-time codes, paid from a prepaid wallet')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run "namaskah --help" for usage)')
    .showSuggestionAfterError(true);

  program
    .command('serve')
    .description('run the API, the dashboard and the background engine')
    .option('--no-worker', 'run the API only, without background work (for several API processes on PostgreSQL)')
    .action(async (options: { worker: boolean }) => {
      const config = configFrom(io);
      const { startServer } = await import('../server.ts');
      const server = await startServer(config, { clock, worker: options.worker, print: io.stdout });
      await runUntilShutdown(io, server, `namaskah is serving at ${server.url} (${where(config)})`);
    });

  program
    .command('worker')
    .description('run the background engine only (polling, deadlines, recovery, upstream settlement); for PostgreSQL deployments')
    .action(async () => {
      const config = configFrom(io);
      const { startWorker } = await import('../server.ts');
      const worker = await startWorker(config, { clock });
      await runUntilShutdown(io, worker, `namaskah worker ${worker.runtime.engine.workerId} running on ${where(config)}`);
    });

  program
    .command('migrate')
    .description('apply pending database migrations (the server also does at start); --status only reports')
    .option('--status', 'list applied, pending and newer-than-this-release migrations without applying any')
    .option('--json', 'with --status: print JSON instead of a table')
    .action(async (options: { status?: boolean; json?: boolean }) => {
      if (options.json && !options.status) throw new UsageError('--json goes with --status');
      const config = configFrom(io);
      const { openConfiguredDatabase, prepareDatabase } = await import('../server.ts');
      const opened = await openConfiguredDatabase(config, clock.now()).catch((error: unknown) => {
        if (error instanceof DataDirLockedError) {
          throw new CommandFailure(
            `${error.message}. The running server applied the migrations when it started` +
              (options.status ? '; stop it to read the status of the data directory' : ''),
          );
        }
        throw error;
      });
      try {
        if (options.status) {
          printMigrationStatus(io, where(config), await migrationStatus(opened.database), options.json === true);
          return;
        }
        const applied = await prepareDatabase(opened.database, config, clock.now());
        io.stdout(
          line(
            applied.length === 0
              ? `${where(config)} is up to date; nothing to apply`
              : `applied ${applied.length} migration(s) to ${where(config)}: ${applied.join(', ')}`,
          ),
        );
      } finally {
        await opened.close();
      }
    });

  const users = program.command('users').description('manage accounts and wallets');

  users
    .command('create')
    .description('create an account (a password is generated and shown once unless --password is given)')
    .argument('<email>', 'the account email')
    .option('--password <password>', `${PASSWORD_MIN_LENGTH}-${PASSWORD_MAX_LENGTH} characters (visible in the process list: prefer the generated one)`)
    .option('--admin', 'give the account the admin role')
    .action(async (emailArgument: string, options: { password?: string; admin?: boolean }) => {
      const email = checkEmail(emailArgument);
      const password = options.password ?? generatePassword();
      if (password.length < PASSWORD_MIN_LENGTH || password.length > PASSWORD_MAX_LENGTH) {
        throw new UsageError(`--password must be ${PASSWORD_MIN_LENGTH}-${PASSWORD_MAX_LENGTH} characters long`);
      }
      const backend = await (await import('./backend.ts')).openAdminBackend(configFrom(io), clock);
      try {
        const user = await backend.createUser({ email, password, role: options.admin ? 'admin' : 'customer' });
        io.stdout(line(`created ${user.role} ${user.email} (id ${user.id})`));
        if (!options.password) io.stdout(line(`password: ${password}\n(shown only this once: store it now)`));
      } finally {
        await backend.close();
      }
    });

  users
    .command('list')
    .description('list accounts with their balances, newest first')
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { json?: boolean }) => {
      const config = configFrom(io);
      const backend = await (await import('./backend.ts')).openAdminBackend(config, clock);
      let rows: AdminUserResource[];
      try {
        rows = await backend.listUsers();
      } finally {
        await backend.close();
      }
      if (options.json) {
        io.stdout(line(JSON.stringify(rows, null, 2)));
        return;
      }
      if (rows.length === 0) {
        io.stdout(line('no users'));
        return;
      }
      const money = (minor: number) => formatMinor(minor, config.CURRENCY);
      io.stdout(
        line(
          table([
            ['EMAIL', 'ROLE', 'BALANCE', 'HELD', 'AVAILABLE', 'CREATED'],
            ...rows.map((u) => [u.email, u.role, money(u.balance_minor), money(u.held_minor), money(u.available_minor), u.created_at]),
          ]),
        ),
      );
    });

  users
    .command('credit')
    .description("top up a wallet (a negative amount adjusts it down), in major units: 12.50")
    .argument('<email>', 'the account email')
    .argument('<amount>', 'decimal amount in major units, at most 2 decimals: 12.50, -3')
    // Checked in the action rather than by commander, so a missing <amount> is reported first.
    .option('--reason <text>', `required: why (1-${MAX_REASON_LENGTH} characters; kept in the ledger and audit log)`)
    .option('--idempotency-key <key>', 'makes a retry safe: the same key never credits twice')
    .action(async (emailArgument: string, amountArgument: string, options: { reason?: string; idempotencyKey?: string }) => {
      const email = checkEmail(emailArgument);
      const amountMinor = parseMajorAmount(amountArgument);
      if (options.reason === undefined) throw new UsageError('--reason is required: say why (it is kept in the ledger and the audit log)');
      const reason = options.reason.trim();
      if (reason.length === 0 || reason.length > MAX_REASON_LENGTH) {
        throw new UsageError(`--reason must be 1-${MAX_REASON_LENGTH} characters`);
      }
      if (options.idempotencyKey !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(options.idempotencyKey)) {
        throw new UsageError(`--idempotency-key must be ${IDEMPOTENCY_KEY_RULE}`);
      }
      const backend = await (await import('./backend.ts')).openAdminBackend(configFrom(io), clock);
      try {
        const user = await backend.findUser(email);
        if (!user) throw new CommandFailure(`no user with email ${email}`);
        const result = await backend.credit({ userId: user.id, amountMinor, reason, idempotencyKey: options.idempotencyKey });
        const { wallet } = result;
        const money = (minor: number) => formatMinor(minor, wallet.currency);
        const what = amountMinor > 0 ? `credited ${money(amountMinor)} to` : `debited ${money(-amountMinor)} from`;
        io.stdout(
          line(
            result.replayed
              ? `already done with idempotency key "${options.idempotencyKey}" (transfer ${result.transferId}); nothing changed`
              : `${what} ${user.email} (transfer ${result.transferId})`,
          ),
        );
        io.stdout(line(`balance ${money(wallet.balance_minor)}, held ${money(wallet.held_minor)}, available ${money(wallet.available_minor)}`));
      } finally {
        await backend.close();
      }
    });

  program
    .command('mail')
    .description('print the local outbox: the mail kept instead of sent when no SMTP_URL is set (verification and reset links)')
    .option('--to <email>', 'only the mail sent to this address')
    .option('--limit <n>', 'how many messages, newest first (1-200)', '20')
    .option('--json', 'print JSON instead of text')
    .action(async (options: { to?: string; limit: string; json?: boolean }) => {
      const to = options.to === undefined ? undefined : checkEmail(options.to);
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new UsageError(`--limit must be a whole number from 1 to 200, not "${options.limit}"`);
      const config = configFrom(io);
      const backend = await (await import('./backend.ts')).openAdminBackend(config, clock);
      let mail;
      try {
        mail = await backend.outbox({ to, limit });
      } finally {
        await backend.close();
      }
      if (options.json) {
        io.stdout(line(JSON.stringify(mail, null, 2)));
        return;
      }
      if (config.SMTP_URL) io.stderr(line('note: SMTP_URL is set, so mail is sent, not kept; the outbox holds only what was kept before'));
      if (mail.length === 0) {
        io.stdout(line(to ? `no mail to ${to} in the outbox` : 'the outbox is empty'));
        return;
      }
      for (const m of mail) io.stdout(line(`--- ${m.created_at}  to ${m.to}\nSubject: ${m.subject}\n\n${m.body}\n`));
    });

  registerOpsCommands(program, io);
  registerBackupCommands(program, io);
  registerCatalogueCommands(program, io);

  return program;
}

/** Runs one CLI invocation; resolves to the process exit code (0 ok, 1 failure, 2 usage error). */
export async function run(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    if (argv.length === 0) {
      program.outputHelp({ error: true });
      return 2;
    }
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed its message (and the help hint).
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof UsageError) {
      io.stderr(line(`error: ${error.message}`));
      return 2;
    }
    if (error instanceof CommandFailure || error instanceof DataDirLockedError || error instanceof ConfigError) {
      io.stderr(line(`error: ${scrubSecrets(error.message)}`));
      return 1;
    }
    const code = (error as NodeJS.ErrnoException)?.code;
    if (code === 'EADDRINUSE') {
      io.stderr(line('error: the address is already in use: another process listens on HOST:PORT (set PORT to choose another)'));
      return 1;
    }
    const message = error instanceof Error ? error.message : String(error);
    io.stderr(line(`error: ${scrubSecrets(message)}`));
    return 1;
  }
}
