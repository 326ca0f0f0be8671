import { ApiError, toApiError } from '../api/errors';

/** The failed request shown in the global banner (one at a time: the latest wins). */
export interface BannerError {
  id: number;
  message: string;
  code: string;
  requestId: string | null;
}

type Listener = () => void;

let current: BannerError | null = null;
let nextId = 1;
const listeners = new Set<Listener>();

function emit(): void {
  for (const listener of listeners) listener();
}

export const errorStore = {
  subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
  get(): BannerError | null {
    return current;
  },
  /** Show a failed request. A 401 is not shown: the user is sent to sign in instead. */
  report(error: unknown): void {
    const apiError: ApiError = toApiError(error);
    if (apiError.status === 401) return;
    current = {
      id: nextId++,
      message: apiError.message,
      code: apiError.code,
      requestId: apiError.requestId,
    };
    emit();
  },
  clear(): void {
    if (current === null) return;
    current = null;
    emit();
  },
};
