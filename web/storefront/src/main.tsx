// Start-up: the API client, sign-in, the payment window (from GET /v1/config), the query
// client and a small history-based router.
import { createApi, type Locale } from '@coursepay/client';
import { QueryClient } from '@tanstack/query-core';
import { render } from 'preact';
import { App, type Env } from './app';
import { chooseAuth } from './auth';
import { choosePaymentWindow, type PaymentWindow } from './payment-window';
import { QueryContext } from './query';
import './styles.css';

const LOCALE_KEY = 'coursepay.locale';
let locale: Locale = localStorage.getItem(LOCALE_KEY) === 'en' ? 'en' : 'ko';
const root = document.getElementById('app');

const api = createApi({
  getToken: () => auth.session()?.accessToken ?? null,
  getLocale: () => locale,
});
const auth = chooseAuth(import.meta.env, api, localStorage);
const queryClient = new QueryClient({
  defaultOptions: {
    // Errors carry a retryable flag; the pages offer a retry button instead of silent retries.
    queries: { retry: false, refetchOnWindowFocus: false, staleTime: 10_000 },
  },
});

// Asked for on the first purchase, not before the first render.
let payment: Promise<PaymentWindow> | null = null;
function paymentWindow(): Promise<PaymentWindow> {
  payment ??= api.config().then((config) => choosePaymentWindow(config, import.meta.env.VITE_TOSS_CLIENT_KEY));
  payment.catch(() => {
    payment = null;
  });
  return payment;
}

async function start() {
  if (!root) return;
  // The course list starts loading while the saved session is read.
  void queryClient.prefetchQuery({ queryKey: ['courses'], queryFn: () => api.courses() });
  // Error messages are needed the moment something fails (they never change while running).
  void queryClient.prefetchQuery({ queryKey: ['messages', locale], queryFn: () => api.messages(locale), staleTime: Infinity });
  await auth.init().catch(() => undefined);
  const draw = () => {
    document.documentElement.lang = locale;
    render(
      <QueryContext.Provider value={queryClient}>
        <App env={env} path={window.location.pathname} />
      </QueryContext.Provider>,
      root,
    );
  };
  const env: Env = {
    api,
    auth,
    paymentWindow,
    get locale() {
      return locale;
    },
    setLocale(l) {
      locale = l;
      localStorage.setItem(LOCALE_KEY, l);
      draw();
    },
    navigate(path) {
      window.history.pushState(null, '', path);
      draw();
      window.scrollTo(0, 0);
    },
    session: sessionStorage,
    local: localStorage,
  };
  auth.subscribe(() => {
    // A new user sees none of the previous one's data.
    queryClient.removeQueries({ queryKey: ['enrollments'] });
    draw();
  });
  window.addEventListener('popstate', draw);
  draw();
}

void start();
