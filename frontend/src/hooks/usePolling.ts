import { useEffect, useRef, useSyncExternalStore } from 'react';

function subscribeVisibility(listener: () => void): () => void {
  document.addEventListener('visibilitychange', listener);
  return () => document.removeEventListener('visibilitychange', listener);
}

function pageVisible(): boolean {
  return document.visibilityState !== 'hidden';
}

/** Whether the tab is showing; false while it is in the background or minimised. */
export function usePageVisible(): boolean {
  return useSyncExternalStore(subscribeVisibility, pageVisible, () => true);
}

/**
 * Calls `tick` every `intervalMs` while `active`, one call at a time (the next waits for the
 * previous to settle). Paused while the tab is hidden; on coming back it ticks at once, since
 * whatever is on screen may be stale by then.
 */
export function usePolling(tick: () => Promise<unknown>, active: boolean, intervalMs: number): void {
  const tickRef = useRef(tick);
  useEffect(() => {
    tickRef.current = tick;
  });
  const visible = usePageVisible();
  const wasHidden = useRef(false);

  useEffect(() => {
    if (!visible) {
      wasHidden.current = true;
      return;
    }
    if (!active) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        await tickRef.current();
      } catch {
        // `tick` reports its own failures; polling carries on.
      }
      if (!stopped) timer = setTimeout(() => void run(), intervalMs);
    };
    const resumed = wasHidden.current;
    wasHidden.current = false;
    timer = setTimeout(() => void run(), resumed ? 0 : intervalMs);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [active, visible, intervalMs]);
}
