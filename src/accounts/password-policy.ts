import { DomainError } from '../errors.ts';
import { normalizeEmail, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './policy.ts';

/**
 * What a new password must not be, each refusal saying why (400 `validation_failed`):
 * - shorter than 8 or longer than 200 characters;
 * - whitespace only;
 * - the account's email, or containing it, or containing the part before the @ when that part is
 *   long enough to mean something (shorter ones, such as "jo", occur in too many good passwords);
 * - one of the most used passwords: the 49,000-password frequency list maintained by zxcvbn-ts
 *   (@zxcvbn-ts/language-common, "passwords-common", drawn from leaked-password corpora).
 * Comparisons ignore case and use the same Unicode normalisation (NFKC) as the hash.
 */
const MIN_LOCAL_PART_LENGTH = 4;

let commonPasswords: Promise<Set<string>> | undefined;

/** Loaded on first use: the list is a few hundred kilobytes that the CLI's quick commands never need. */
function loadCommonPasswords(): Promise<Set<string>> {
  commonPasswords ??= import('@zxcvbn-ts/language-common').then(
    ({ dictionary }) => new Set((dictionary['passwords-common'] as string[]).map((word) => word.toLowerCase())),
  );
  return commonPasswords;
}

/** Why this password may not be used for this email, or undefined when it may. */
export async function passwordProblem(password: string, email: string): Promise<string | undefined> {
  if (password.length < PASSWORD_MIN_LENGTH || password.length > PASSWORD_MAX_LENGTH) {
    return `password must be ${PASSWORD_MIN_LENGTH}-${PASSWORD_MAX_LENGTH} characters long`;
  }
  if (password.trim() === '') return 'password must not be only whitespace';
  const folded = password.normalize('NFKC').toLowerCase();
  const address = normalizeEmail(email).normalize('NFKC');
  if (address !== '' && folded.includes(address)) return 'password must not contain your email address';
  const localPart = address.slice(0, Math.max(0, address.lastIndexOf('@')));
  if (localPart.length >= MIN_LOCAL_PART_LENGTH && folded.includes(localPart)) {
    return 'password must not contain the part of your email address before the @';
  }
  if ((await loadCommonPasswords()).has(folded)) {
    return 'password is one of the most commonly used passwords, which are guessed first; choose another';
  }
  return undefined;
}

export async function checkPasswordPolicy(password: string, email: string): Promise<void> {
  const problem = await passwordProblem(password, email);
  if (problem) throw new DomainError('validation_failed', problem);
}
