import { useCallback, useState } from 'react';
import { type ApiError, toApiError } from '../api/errors';

export interface Submission<A extends unknown[]> {
  run: (...args: A) => Promise<boolean>;
  pending: boolean;
  error: ApiError | null;
  fieldErrors: Record<string, string>;
  reset: () => void;
}

/** Runs a form action, keeping its error for display next to the form. */
export function useSubmit<A extends unknown[]>(
  action: (...args: A) => Promise<unknown>,
): Submission<A> {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  const run = useCallback(
    async (...args: A) => {
      setPending(true);
      setError(null);
      try {
        await action(...args);
        return true;
      } catch (reason) {
        setError(toApiError(reason));
        return false;
      } finally {
        setPending(false);
      }
    },
    [action],
  );
  const reset = useCallback(() => setError(null), []);
  return { run, pending, error, fieldErrors: error ? error.fieldErrors() : {}, reset };
}
