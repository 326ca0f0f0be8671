import { lazy, Suspense, useEffect, useState } from 'react';
import { Button } from '@mantine/core';
import { DECLARE_EVENT, DECLARE_SHORTCUT_LABEL, isDeclareShortcut } from './declare';

// The dialog (and the incidents API) load on first use, not with the shell.
const DeclareIncidentDialog = lazy(() => import('./DeclareIncidentDialog'));

/**
 * The shell's "Declare incident" button, on every page, and its keyboard shortcut
 * (Alt+Shift+D, anywhere, even in a text field). Escape closes the dialog and gives the focus
 * back to where it was.
 */
export function DeclareIncidentAction() {
  const [opened, setOpened] = useState(false);
  const [loaded, setLoaded] = useState(false);

  useEffect(() => {
    const open = () => {
      setLoaded(true);
      setOpened(true);
    };
    const onKey = (event: KeyboardEvent) => {
      if (!isDeclareShortcut(event)) return;
      event.preventDefault();
      open();
    };
    window.addEventListener(DECLARE_EVENT, open);
    window.addEventListener('keydown', onKey);
    return () => {
      window.removeEventListener(DECLARE_EVENT, open);
      window.removeEventListener('keydown', onKey);
    };
  }, []);

  return (
    <>
      <Button
        size="xs"
        color="red"
        aria-keyshortcuts={DECLARE_SHORTCUT_LABEL}
        onClick={() => {
          setLoaded(true);
          setOpened(true);
        }}
      >
        Declare incident
      </Button>
      {loaded ? (
        <Suspense fallback={null}>
          <DeclareIncidentDialog opened={opened} onClose={() => setOpened(false)} />
        </Suspense>
      ) : null}
    </>
  );
}
