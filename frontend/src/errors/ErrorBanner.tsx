import { useEffect, useRef, useSyncExternalStore } from 'react';
import { useLocation } from 'react-router';
import { Alert, Text } from '@mantine/core';
import { errorStore } from './errorStore';

/** Shows the server's message for the latest failed request; cleared on navigation. */
export function ErrorBanner() {
  const error = useSyncExternalStore(errorStore.subscribe, errorStore.get, errorStore.get);
  const location = useLocation();
  const firstRender = useRef(true);

  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    errorStore.clear();
  }, [location.pathname]);

  if (!error) return null;
  return (
    <Alert
      key={error.id}
      color="red"
      variant="light"
      title="Request failed"
      withCloseButton
      closeButtonLabel="Dismiss error"
      onClose={errorStore.clear}
      mb="md"
      data-testid="error-banner"
    >
      <Text size="sm">{error.message}</Text>
      {error.requestId ? (
        <Text size="xs" c="dimmed" mt={4}>
          Error code {error.code} · request id {error.requestId}
        </Text>
      ) : null}
    </Alert>
  );
}
