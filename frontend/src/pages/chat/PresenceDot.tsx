import { usePresence } from './presence';

const LABELS = { online: 'online', away: 'away', offline: 'offline' } as const;

/** A coloured dot with its word for screen readers; nothing until the status is known. */
export function PresenceDot({ userId }: { userId: string }) {
  const status = usePresence(userId);
  if (!status) return null;
  return (
    <>
      <span className="chat-presence" data-status={status} data-testid={`presence-${userId}`} aria-hidden="true" />
      <span className="visually-hidden">({LABELS[status]})</span>
    </>
  );
}
