import { useCallback, useEffect, useRef, useState, type DependencyList } from 'react';
import { type ApiError, toApiError } from '../api/errors';
import { errorStore } from '../errors/errorStore';
import { usePolling } from './usePolling';

export const POLL_INTERVAL_MS = 2000;

function bump(...counters: { current: number }[]): void {
  for (const counter of counters) counter.current++;
}

export interface LiveQuery<T> {
  data: T | undefined;
  /** The first load's failure (also shown in the global banner). */
  error: ApiError | undefined;
  loading: boolean;
  /** The latest background refresh's failure, cleared by the next success. */
  refreshError: ApiError | undefined;
  /** Load again now (after an action that changed the data). */
  refresh: () => Promise<void>;
  /** Change the data locally; a refresh already under way is then discarded. */
  update: (change: (data: T | undefined) => T | undefined) => void;
}

/**
 * Loads data when `deps` change, then refreshes it every `intervalMs` for as long as
 * `live(data)` holds and the tab is visible. A refresh answer is dropped when the data was
 * loaded or changed again while it was in flight, so an old answer never overwrites a newer one.
 */
export function useLiveQuery<T>(
  load: () => Promise<T>,
  deps: DependencyList,
  live: (data: T) => boolean,
  intervalMs: number | ((data: T) => number) = POLL_INTERVAL_MS,
): LiveQuery<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ApiError>();
  const [refreshError, setRefreshError] = useState<ApiError>();
  const [loading, setLoading] = useState(true);
  const loadRef = useRef(load);
  useEffect(() => {
    loadRef.current = load;
  });
  // Bumped by every load, refresh and local change: only the latest started may land.
  const epoch = useRef(0);
  // Bumped when `deps` change: the first load lands unless a newer one replaced it.
  const generation = useRef(0);

  useEffect(() => {
    epoch.current++;
    const mine = ++generation.current;
    // Marks the start of a load that settles asynchronously below; not a derived value.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    setLoading(true);
    setRefreshError(undefined);
    loadRef.current().then(
      (value) => {
        if (generation.current !== mine) return;
        epoch.current++;
        setData(value);
        setError(undefined);
        setLoading(false);
      },
      (reason: unknown) => {
        if (generation.current !== mine) return;
        const apiError = toApiError(reason);
        setError(apiError);
        setLoading(false);
        errorStore.report(apiError);
      },
    );
    // Counters, not DOM nodes: bumping their latest value is the point.
    return () => bump(generation, epoch);
    // `deps` says when `load` means something new.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  const refresh = useCallback(async () => {
    const mine = ++epoch.current;
    try {
      const value = await loadRef.current();
      if (epoch.current !== mine) return;
      setData(value);
      setError(undefined);
      setRefreshError(undefined);
    } catch (reason) {
      if (epoch.current !== mine) return;
      setRefreshError(toApiError(reason));
    }
  }, []);

  const update = useCallback((change: (data: T | undefined) => T | undefined) => {
    epoch.current++;
    setData(change);
  }, []);

  const every = typeof intervalMs === 'function' && data !== undefined ? intervalMs(data) : intervalMs;
  usePolling(
    refresh,
    data !== undefined && live(data),
    typeof every === 'number' ? every : POLL_INTERVAL_MS,
  );
  return { data, error, loading, refreshError, refresh, update };
}
