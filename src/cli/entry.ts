import { config as loadDotenv } from 'dotenv';
import { run } from './main.ts';

// The process edge: the only place that reads process.env (after .env) and listens for signals.
loadDotenv({ quiet: true });

// Output piped into `head` and the like: a closed pipe ends the command quietly, as in any Unix tool.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

let shutdown: Promise<string> | undefined;
function waitForShutdown(): Promise<string> {
  shutdown ??= new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      resolve(signal);
      // A second signal while shutting down means "now".
      process.once(signal, () => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  return shutdown;
}

const code = await run(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  waitForShutdown,
});
process.exitCode = code;
// Let pending output drain; a lingering handle (a pool, a timer) must not keep the process alive.
setTimeout(() => process.exit(code), 2_000).unref();
