// A tiny Preact binding for TanStack Query's framework-agnostic core: one hook over a
// QueryObserver, the same thing @tanstack/react-query does, without React.
import { QueryClient, QueryObserver, type QueryKey, type QueryObserverResult } from '@tanstack/query-core';
import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';

export const QueryContext = createContext<QueryClient | null>(null);

export function useQueryClient(): QueryClient {
  const qc = useContext(QueryContext);
  if (!qc) throw new Error('QueryContext missing');
  return qc;
}

export function useQuery<T>(options: {
  queryKey: QueryKey;
  queryFn: () => Promise<T>;
  enabled?: boolean;
  staleTime?: number;
}): QueryObserverResult<T, Error> {
  const qc = useQueryClient();
  const [observer] = useState(() => new QueryObserver<T, Error>(qc, options));
  const [result, setResult] = useState(() => observer.getOptimisticResult(qc.defaultQueryOptions(options)));
  const key = JSON.stringify(options.queryKey);
  useEffect(() => {
    observer.setOptions(options);
    setResult(observer.getOptimisticResult(qc.defaultQueryOptions(options)));
    return observer.subscribe(setResult);
    // The key (and enabled) identify the query; queryFn closures change on every render.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, options.enabled]);
  return result;
}
