import { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { useAuth } from '../auth/AuthContext';
import {
  claimSocket,
  connectSocket,
  onSocketConnect,
  onSocketEvent,
  socketEmit,
  socketRequest,
  socketStatus,
  subscribeSocketStatus,
} from '../api/socket';

/**
 * Live updates over the shared socket (docs/chat.md, "Live updates"): a page subscribes to a
 * topic (`incidents`, `incidents:<number>`, `images:batch:<id>`) and gets a "refetch this"
 * signal when the server pushes `incidents:incident` or `images:batch` for it. The REST answer
 * stays the source of truth; a page polls only while it is not live (socket down, or a server
 * that refuses the subscription).
 */

export interface IncidentLiveEvent {
  number: number;
  status?: string;
  severity?: string;
  updated_at?: string;
  change?: 'created' | 'updated' | 'status' | 'comment' | 'timeline';
}

export interface BatchLiveEvent {
  id: string;
  status?: string;
  updated_at?: string;
}

/** The server event a topic's updates arrive as, and whether one payload belongs to it. */
export function topicEvent(topic: string): { event: string; matches: (payload: unknown) => boolean } | null {
  if (topic === 'incidents') return { event: 'incidents:incident', matches: () => true };
  const incident = /^incidents:(\d+)$/.exec(topic);
  if (incident) {
    const number = Number(incident[1]);
    return {
      event: 'incidents:incident',
      matches: (payload) => (payload as Partial<IncidentLiveEvent> | null)?.number === number,
    };
  }
  const batch = /^images:batch:(.+)$/.exec(topic);
  if (batch) {
    const id = batch[1];
    return {
      event: 'images:batch',
      matches: (payload) => (payload as Partial<BatchLiveEvent> | null)?.id === id,
    };
  }
  return null;
}

// How many mounted hooks hold each topic: unsubscribed when the last one lets go.
const holders = new Map<string, number>();

/** Whether the shared socket is connected now (re-renders on change). */
export function useSocketConnected(): boolean {
  return useSyncExternalStore(subscribeSocketStatus, () => socketStatus() === 'connected');
}

/**
 * Subscribes to every topic of `topics` while mounted and calls `onChange` when one of them
 * changes, and once each subscription is accepted, after every (re)connect: what happened
 * before it was pushed to nobody. Returns whether the
 * page is live: connected and every subscription accepted. Pass `[]` to subscribe to nothing.
 */
export function useLiveTopics(topics: readonly string[], onChange: (payload: unknown) => void): boolean {
  const { user } = useAuth();
  const userId = user?.id ?? null;
  const connected = useSocketConnected();
  const [accepted, setAccepted] = useState<ReadonlySet<string>>(() => new Set());
  const callback = useRef(onChange);
  useEffect(() => {
    callback.current = onChange;
  });
  const key = [...topics].sort().join('\n');

  useEffect(() => {
    if (!userId || !key) return undefined;
    const wanted = key.split('\n');
    let active = true;
    claimSocket(userId);
    for (const topic of wanted) holders.set(topic, (holders.get(topic) ?? 0) + 1);

    const subscribeAll = () => {
      setAccepted(new Set());
      for (const topic of wanted) {
        socketRequest('live:subscribe', { topic }).then(
          () => {
            if (!active) return;
            setAccepted((prev) => new Set(prev).add(topic));
            // Read again once subscribed, the first time too: what changed between the page's
            // own read and this subscription was pushed to nobody (an image batch can finish
            // before the socket is up, and the page, live from then on, stopped polling).
            callback.current(null);
          },
          () => undefined, // refused or not supported: the page keeps polling
        );
      }
    };
    const offConnect = onSocketConnect(subscribeAll);
    const offEvents = wanted.flatMap((topic) => {
      const spec = topicEvent(topic);
      if (!spec) return [];
      return [
        onSocketEvent(spec.event, (payload) => {
          if (active && spec.matches(payload)) callback.current(payload);
        }),
      ];
    });
    connectSocket().catch(() => undefined);

    return () => {
      active = false;
      offConnect();
      for (const off of offEvents) off();
      for (const topic of wanted) {
        const left = (holders.get(topic) ?? 1) - 1;
        if (left > 0) holders.set(topic, left);
        else {
          holders.delete(topic);
          socketEmit('live:unsubscribe', { topic });
        }
      }
      setAccepted(new Set());
    };
  }, [key, userId]);

  if (!key) return false;
  return connected && key.split('\n').every((topic) => accepted.has(topic));
}

export function useLiveTopic(topic: string | null, onChange: (payload: unknown) => void): boolean {
  return useLiveTopics(topic ? [topic] : [], onChange);
}
