import { useCallback, useEffect, useState, type DependencyList } from 'react';
import { type ApiError, toApiError } from '../api/errors';
import { errorStore } from '../errors/errorStore';

export interface QueryState<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
}

/** Loads data when `deps` change; a failure goes to the global error banner. */
export function useApiQuery<T>(load: () => Promise<T>, deps: DependencyList): QueryState<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ApiError>();
  const [loading, setLoading] = useState(true);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    let live = true;
    // Marks the start of a load that settles asynchronously below; not a derived value.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    setLoading(true);
    load().then(
      (value) => {
        if (!live) return;
        setData(value);
        setError(undefined);
        setLoading(false);
      },
      (reason: unknown) => {
        if (!live) return;
        const apiError = toApiError(reason);
        setError(apiError);
        setLoading(false);
        errorStore.report(apiError);
      },
    );
    return () => {
      live = false;
    };
    // `load` is a fresh closure every render; `deps` says when it means something new.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, generation]);

  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  return { data, error, loading, reload };
}
