/**
 * Failure classes. One place (classify) decides: bad input -> dead letter and continue;
 * dependency down -> retriable, rethrow, offsets not committed; anything else -> a bug, crash.
 */
export class BadInputError extends Error {
  readonly retriable = false;
  constructor(readonly reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BadInputError';
  }
}

export class DependencyError extends Error {
  readonly retriable = true;
  constructor(readonly dependency: 'kafka' | 'redis', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DependencyError';
  }
}

export type FailureClass = 'bad-input' | 'retriable' | 'bug';

export function classify(err: unknown): FailureClass {
  if (err instanceof BadInputError) return 'bad-input';
  if (err instanceof DependencyError) return 'retriable';
  if (typeof err === 'object' && err !== null && (err as { retriable?: unknown }).retriable === true) return 'retriable';
  return 'bug';
}
