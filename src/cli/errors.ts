/** The command was used wrongly (bad argument, unknown command): exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** The command was right but could not be carried out (unknown email, database locked…): exit code 1. */
export class CommandFailure extends Error {
  readonly exitCode = 1;
}
