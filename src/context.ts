import type { Logger } from 'pino';
import type { Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';

/**
 * What every part of a running Namaskah needs, built once by the composition root (src/server.ts)
 * and passed down. Nothing below reads the environment or the wall clock on its own.
 */
export interface AppContext {
  config: Config;
  database: Database;
  clock: Clock;
  logger: Logger;
}
