import { useSyncExternalStore } from 'react';
import type { Presence } from '../../api/chat';
import { onSocketEvent, socketRequest } from '../../api/socket';

/** Who is online: from the members list (`presence`) and the server's `presence` events. */
const statuses = new Map<string, Presence>();
const listeners = new Set<() => void>();
let version = 0;

export function setPresence(userId: string, status: Presence): void {
  if (statuses.get(userId) === status) return;
  statuses.set(userId, status);
  version += 1;
  for (const listener of listeners) listener();
}

export function presenceOf(userId: string): Presence | undefined {
  return statuses.get(userId);
}

export function usePresence(userId: string): Presence | undefined {
  useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => version,
  );
  return statuses.get(userId);
}

/**
 * Follows `presence` events and reports this tab's own: `away` while hidden, `online` when
 * shown. Returns the cleanup.
 */
export function trackPresence(): () => void {
  const off = onSocketEvent<{ user: { id: string }; status: Presence }>('presence', (event) => {
    if (event?.user?.id) setPresence(event.user.id, event.status);
  });
  const report = () => {
    const status = document.visibilityState === 'hidden' ? 'away' : 'online';
    socketRequest('presence', { status }).catch(() => undefined);
  };
  document.addEventListener('visibilitychange', report);
  return () => {
    off();
    document.removeEventListener('visibilitychange', report);
  };
}
