/**
 * The one Socket.IO connection of the app, to the `/chat` namespace (docs/chat.md): chat and
 * the live updates of every module share it. socket.io-client is imported on first use, so
 * pages that never need the socket never download it.
 *
 * - `socketRequest(event, payload)`: emits with an ack (the server's `{ok, ...}` answer);
 *   resolves with the ack, rejects with a `SocketError` on `{ok: false}` or a timeout.
 * - `onSocketEvent(event, handler)`: a server event, kept across reconnects.
 * - `onSocketConnect(handler)`: every (re)connect, to re-join rooms and catch up.
 * - `socketStatus()` / `subscribeSocketStatus()`: for `useSyncExternalStore`.
 * - `closeSocket()`: on sign-out (and a session that expired): the connection is closed, and the
 *   next `connectSocket()` opens a fresh one with the next sign-in's cookie.
 */

export type SocketStatus = 'idle' | 'connecting' | 'connected' | 'disconnected';

/** The part of a socket.io-client `Socket` this module uses (tests pass a fake). */
export interface RawSocket {
  readonly connected: boolean;
  on(event: string, handler: (...args: unknown[]) => void): unknown;
  timeout(ms: number): { emitWithAck(event: string, payload: unknown): Promise<unknown> };
  emit(event: string, payload: unknown): unknown;
  disconnect(): unknown;
}

export type SocketFactory = () => Promise<RawSocket>;

export interface AckError {
  code: string;
  message: string;
}

export class SocketError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'SocketError';
    this.code = code;
  }
}

export const ACK_TIMEOUT_MS = 10_000;

const defaultFactory: SocketFactory = async () => {
  const { io } = await import('socket.io-client');
  const socket = io(`${window.location.origin}/chat`, {
    transports: ['websocket'],
    withCredentials: true,
    reconnection: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    // A new connection (not socket.io-client's cached manager): the handshake after a sign-in
    // must carry the new session cookie.
    forceNew: true,
  });
  return socket as unknown as RawSocket;
};

let factory: SocketFactory = defaultFactory;
let socketPromise: Promise<RawSocket> | null = null;
let current: RawSocket | null = null;
let status: SocketStatus = 'idle';
/** Bumped by every close: a socket still being made for a closed generation is dropped. */
let generation = 0;
/** The signed-in user the connection was opened for. */
let owner: string | null = null;
const statusListeners = new Set<() => void>();
const eventHandlers = new Map<string, Set<(payload: unknown) => void>>();
const connectHandlers = new Set<() => void>();

function setStatus(next: SocketStatus): void {
  if (status === next) return;
  status = next;
  for (const listener of statusListeners) listener();
}

function dispatch(event: string, payload: unknown): void {
  for (const handler of eventHandlers.get(event) ?? []) handler(payload);
}

/** The shared socket, created (and socket.io-client loaded) on the first call. */
export function connectSocket(): Promise<RawSocket> {
  if (socketPromise) return socketPromise;
  setStatus('connecting');
  const made = generation;
  const live = (socket: RawSocket) => made === generation && current === socket;
  socketPromise = factory().then(
    (socket) => {
      if (made !== generation) {
        // Closed (signed out) while it was being made: never used.
        socket.disconnect();
        throw new SocketError('disconnected', 'Not connected to the server.');
      }
      current = socket;
      socket.on('connect', () => {
        if (!live(socket)) return;
        setStatus('connected');
        for (const handler of [...connectHandlers]) handler();
      });
      socket.on('disconnect', () => live(socket) && setStatus('disconnected'));
      socket.on('connect_error', () => live(socket) && setStatus('disconnected'));
      // Every server event reaches the handlers registered for its name (the current socket's only).
      (socket as unknown as { onAny?: (fn: (event: string, payload: unknown) => void) => void }).onAny?.(
        (event, payload) => live(socket) && dispatch(event, payload),
      );
      if (socket.connected) {
        setStatus('connected');
        for (const handler of [...connectHandlers]) handler();
      }
      return socket;
    },
    (error: unknown) => {
      if (made === generation) {
        socketPromise = null;
        setStatus('disconnected');
      }
      throw error;
    },
  );
  return socketPromise;
}

/**
 * Closes the connection (sign-out, or a session that expired): nothing more arrives on it, and
 * the next `connectSocket()` opens a new one, made with the next sign-in's credentials. The
 * handlers pages registered stay (they go with their pages).
 */
export function closeSocket(): void {
  generation += 1;
  const socket = current;
  socketPromise = null;
  current = null;
  owner = null;
  socket?.disconnect();
  setStatus('idle');
}

export function socketStatus(): SocketStatus {
  return status;
}

export function subscribeSocketStatus(listener: () => void): () => void {
  statusListeners.add(listener);
  return () => statusListeners.delete(listener);
}

export function onSocketEvent<T = unknown>(event: string, handler: (payload: T) => void): () => void {
  let handlers = eventHandlers.get(event);
  if (!handlers) {
    handlers = new Set();
    eventHandlers.set(event, handlers);
  }
  const wrapped = handler as (payload: unknown) => void;
  handlers.add(wrapped);
  return () => handlers.delete(wrapped);
}

/** Called on every connect and reconnect (and at once when already connected). */
export function onSocketConnect(handler: () => void): () => void {
  connectHandlers.add(handler);
  if (status === 'connected') queueMicrotask(() => connectHandlers.has(handler) && handler());
  return () => connectHandlers.delete(handler);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Emits `event` and waits for the ack; `{ok: false}` and timeouts reject with a SocketError. */
export async function socketRequest<T extends object = Record<string, unknown>>(
  event: string,
  payload: unknown,
  timeoutMs = ACK_TIMEOUT_MS,
): Promise<T & { ok: true }> {
  const socket = await connectSocket();
  if (!socket.connected) throw new SocketError('disconnected', 'Not connected to the server.');
  let ack: unknown;
  try {
    ack = await socket.timeout(timeoutMs).emitWithAck(event, payload);
  } catch {
    throw new SocketError('timeout', 'The server did not answer in time.');
  }
  if (isRecord(ack) && ack.ok === true) return ack as T & { ok: true };
  const error = isRecord(ack) && isRecord(ack.error) ? ack.error : {};
  throw new SocketError(
    typeof error.code === 'string' ? error.code : 'invalid_answer',
    typeof error.message === 'string' ? error.message : 'The server refused the request.',
  );
}

/** Fire and forget (typing). */
export function socketEmit(event: string, payload: unknown): void {
  if (current?.connected) current.emit(event, payload);
}

/**
 * The socket belongs to the signed-in user it was opened for (the session cookie is read at
 * connect): another user in the same tab gets a new connection, never the previous one's.
 */
export function claimSocket(userId: string): void {
  if (owner !== null && owner !== userId && (socketPromise || current)) closeSocket();
  owner = userId;
}

/** Tests: replace how the socket is made, and forget the current one. */
export function setSocketFactory(next: SocketFactory | null): void {
  generation += 1;
  current?.disconnect();
  factory = next ?? defaultFactory;
  socketPromise = null;
  current = null;
  status = 'idle';
  owner = null;
  eventHandlers.clear();
  connectHandlers.clear();
  for (const listener of statusListeners) listener();
}
