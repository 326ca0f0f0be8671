import { Alert } from '@mantine/core';
import type { ApiError } from '../api/errors';

/** A form-level error, announced to screen readers as it appears. */
export function FormError({ error, title }: { error: ApiError | null | undefined; title?: string }) {
  if (!error) return null;
  return (
    <Alert color="red" variant="light" title={title} role="alert" data-testid="form-error">
      {error.message}
      {error.retryAfter ? ` Try again in ${formatWait(error.retryAfter)}.` : null}
    </Alert>
  );
}

function formatWait(seconds: number): string {
  if (seconds < 90) return `${seconds} seconds`;
  return `${Math.ceil(seconds / 60)} minutes`;
}
