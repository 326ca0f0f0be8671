import type { RawSocket } from '../../api/socket';

type Handler = (...args: unknown[]) => void;
export type AckFn = (event: string, payload: unknown) => unknown;

/** A socket.io-client stand-in for unit tests: acks come from `answer`, events from `push`. */
export class FakeSocket implements RawSocket {
  connected = false;
  emitted: { event: string; payload: unknown }[] = [];
  private handlers = new Map<string, Handler[]>();
  private any: ((event: string, payload: unknown) => void)[] = [];
  constructor(public answer: AckFn) {}

  on(event: string, handler: Handler) {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), handler]);
    return this;
  }
  onAny(handler: (event: string, payload: unknown) => void) {
    this.any.push(handler);
  }
  timeout() {
    return {
      emitWithAck: async (event: string, payload: unknown) => {
        this.emitted.push({ event, payload });
        const ack = this.answer(event, payload);
        if (ack instanceof Error) throw ack;
        return ack;
      },
    };
  }
  emit(event: string, payload: unknown) {
    this.emitted.push({ event, payload });
  }
  disconnect() {
    this.setConnected(false);
  }
  setConnected(connected: boolean) {
    this.connected = connected;
    for (const handler of this.handlers.get(connected ? 'connect' : 'disconnect') ?? []) handler();
  }
  push(event: string, payload: unknown) {
    for (const handler of this.any) handler(event, payload);
  }
  sent(event: string) {
    return this.emitted.filter((e) => e.event === event).map((e) => e.payload as Record<string, unknown>);
  }
}
