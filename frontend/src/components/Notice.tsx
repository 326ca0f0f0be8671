import { Alert } from '@mantine/core';
import type { ReactNode } from 'react';

/**
 * A page's success notice ("Saved.", "Pinned."): a live region that is always in the page (so
 * screen readers announce what appears in it), holding a dismissable green alert when there
 * is something to say.
 */
export function Notice({ notice, onDismiss }: { notice: ReactNode; onDismiss: () => void }) {
  return (
    <div role="status">
      {notice ? (
        <Alert color="green" variant="light" withCloseButton closeButtonLabel="Dismiss" onClose={onDismiss}>
          {notice}
        </Alert>
      ) : null}
    </div>
  );
}
