import { QueryCache, QueryClient, focusManager } from '@tanstack/react-query';
import { type ApiError, toApiError } from './errors';
import { errorStore } from '../errors/errorStore';

declare module '@tanstack/react-query' {
  interface Register {
    // Every query function goes through `unwrap`, which throws ApiError.
    defaultError: ApiError;
    /** `quiet`: a failed first load is not shown in the global error banner. */
    queryMeta: { quiet?: boolean };
  }
}

// Live pages pause while the tab is hidden and refresh on coming back. The event is fired at
// the document (the library listens on the window, which only hears it when it bubbles).
focusManager.setEventListener((handleFocus) => {
  const onChange = () => handleFocus();
  document.addEventListener('visibilitychange', onChange);
  return () => document.removeEventListener('visibilitychange', onChange);
});

/** How often a list or page with work in progress reads its data again. */
export const POLL_INTERVAL_MS = 2000;

/**
 * The app's server-state cache. A query's first load that fails goes to the global error
 * banner; a failed background refresh does not (the page keeps its data and says so itself).
 * No automatic retries: an error is shown at once, and live pages poll again anyway.
 */
export function createQueryClient(): QueryClient {
  return new QueryClient({
    queryCache: new QueryCache({
      onError: (error, query) => {
        if (query.state.data === undefined && !query.meta?.quiet) errorStore.report(toApiError(error));
      },
    }),
    defaultOptions: {
      queries: { retry: false, refetchOnWindowFocus: true },
      mutations: { retry: false },
    },
  });
}
