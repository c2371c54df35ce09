// The storefront's pages. Data goes through TanStack Query (keys: ['courses'], ['course', id],
// ['enrollments'], ['enrollment', id], ['messages', locale]); the payment flow's state lives in
// flow.ts; the payment window and sign-in are chosen once at start-up (main.tsx).
import { ApiError, errorMessage, type Api, type Course, type Enrollment } from '@coursepay/client';
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Auth } from './auth';
import {
  clearInFlight,
  confirmPayment,
  failCode,
  forgetPending,
  parseFail,
  parseSuccess,
  pendingOrders,
  retryDelay,
  saveInFlight,
  type ConfirmOutcome,
} from './flow';
import { paymentRequest, type PaymentWindow } from './payment-window';
import { useQuery, useQueryClient } from './query';
import { STRINGS, type Locale, type Strings } from './strings';

export interface Env {
  api: Api;
  auth: Auth;
  /** The payment window, chosen from GET /v1/config on first use. */
  paymentWindow: () => Promise<PaymentWindow>;
  locale: Locale;
  setLocale: (l: Locale) => void;
  navigate: (path: string) => void;
  session: Storage;
  local: Storage;
}

const EnvContext = createContext<Env | null>(null);

function useEnv(): Env {
  const env = useContext(EnvContext);
  if (!env) throw new Error('EnvContext missing');
  return env;
}

function useStrings(): Strings {
  return STRINGS[useEnv().locale];
}

function useSession() {
  const { auth } = useEnv();
  const [session, setSession] = useState(auth.session());
  useEffect(() => auth.subscribe(() => setSession(auth.session())), [auth]);
  return session;
}

function useMessages() {
  const { api, locale } = useEnv();
  return useQuery({ queryKey: ['messages', locale], queryFn: () => api.messages(locale), staleTime: Infinity });
}

function Link(props: { href: string; children: ComponentChildren; class?: string }) {
  const { navigate } = useEnv();
  return (
    <a
      href={props.href}
      class={props.class}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

/** A failed request: the localized message for its code, the code, the requestId, and a
 *  retry button (enabled once Retry-After has passed) when the error is retryable. */
export function ErrorBox(props: { error: unknown; onRetry?: () => void }) {
  const { locale } = useEnv();
  const t = useStrings();
  const messages = useMessages();
  const error = useMemo(
    () =>
      props.error instanceof ApiError
        ? props.error
        : new ApiError({ status: 0, code: 'E_NETWORK', retryable: true, message: String(props.error) }),
    [props.error],
  );
  const [waitMs, setWaitMs] = useState(() => (error.retryable ? retryDelay(error) : 0));
  useEffect(() => {
    if (!error.retryable) return;
    const until = Date.now() + retryDelay(error);
    setWaitMs(until - Date.now());
    const timer = setInterval(() => {
      const left = until - Date.now();
      setWaitMs(Math.max(0, left));
      if (left <= 0) clearInterval(timer);
    }, 250);
    return () => clearInterval(timer);
  }, [error]);
  return (
    <div class="error" role="alert" data-code={error.code}>
      <p class="error-message">{messages.isPending ? t.loading : errorMessage(error.code, locale, messages.data)}</p>
      <p class="error-meta">
        {t.errorCode}: <code>{error.code}</code>
        {error.requestId && (
          <>
            {' · '}
            {t.requestId}: <code class="request-id">{error.requestId}</code>
          </>
        )}
      </p>
      {error.retryable && props.onRetry && (
        <button type="button" class="retry" disabled={waitMs > 0} onClick={props.onRetry}>
          {waitMs > 0 ? t.retryIn(Math.ceil(waitMs / 1000)) : t.retry}
        </button>
      )}
    </div>
  );
}

function Loading() {
  return (
    <p class="loading" aria-live="polite">
      {useStrings().loading}
    </p>
  );
}

function SignIn() {
  const { auth } = useEnv();
  const t = useStrings();
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (auth.kind === 'dev') {
    return (
      <>
        <button type="button" class="sign-in" onClick={() => auth.signIn().catch(setError)}>
          {t.signInDev}
        </button>
        {error !== null && <ErrorBox error={error} />}
      </>
    );
  }
  if (sent) return <p>{t.emailSent}</p>;
  return (
    <form
      class="email-sign-in"
      onSubmit={(e) => {
        e.preventDefault();
        auth.signIn(email).then(() => setSent(true), setError);
      }}
    >
      <label>
        {t.emailLabel} <input type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
      </label>
      <button type="submit">{t.signInEmail}</button>
      {error !== null && <ErrorBox error={error} />}
    </form>
  );
}

function Header() {
  const { auth, locale, setLocale } = useEnv();
  const t = useStrings();
  const session = useSession();
  return (
    <header class="top">
      <a class="skip" href="#main">
        {t.skip}
      </a>
      <Link href="/" class="brand">
        {t.shop}
      </Link>
      <nav aria-label={t.shop}>
        <Link href="/">{t.navCourses}</Link>
        <Link href="/me">{t.navMine}</Link>
      </nav>
      <div class="account">
        <button
          type="button"
          class="lang"
          lang={locale === 'ko' ? 'en' : 'ko'}
          onClick={() => setLocale(locale === 'ko' ? 'en' : 'ko')}
        >
          {t.switchLang}
        </button>
        {session ? (
          <>
            <span class="who">{t.signedInAs(session.userId)}</span>
            <button type="button" onClick={() => void auth.signOut()}>
              {t.signOut}
            </button>
          </>
        ) : (
          <SignIn />
        )}
      </div>
    </header>
  );
}

function CourseList() {
  const { api } = useEnv();
  const t = useStrings();
  const courses = useQuery({ queryKey: ['courses'], queryFn: () => api.courses() });
  const marked = useRef(false);
  useEffect(() => {
    if (courses.data && !marked.current) {
      marked.current = true;
      // Read by the browser test: time from navigation start to the first list on screen.
      performance.mark('coursepay:courses-rendered');
    }
  }, [courses.data]);
  return (
    <>
      <h1>{t.coursesTitle}</h1>
      {courses.isPending && <Loading />}
      {courses.error && <ErrorBox error={courses.error} onRetry={() => void courses.refetch()} />}
      {courses.data?.length === 0 && <p>{t.noCourses}</p>}
      <ul class="courses">
        {courses.data?.map((c) => (
          <li key={c.id} class="course-card">
            <h2>
              <Link href={`/courses/${c.id}`}>{c.title}</Link>
            </h2>
            <p class="price">{t.price(c.price)}</p>
          </li>
        ))}
      </ul>
    </>
  );
}

function useEnrollments(enabled: boolean) {
  const { api } = useEnv();
  return useQuery({ queryKey: ['enrollments'], queryFn: () => api.myEnrollments(), enabled });
}

function CoursePage(props: { id: string }) {
  const { api, paymentWindow, session: sessionStorage, local } = useEnv();
  const t = useStrings();
  const session = useSession();
  const course = useQuery({ queryKey: ['course', props.id], queryFn: () => api.course(props.id) });
  const enrollments = useEnrollments(session !== null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const mine = enrollments.data?.find((e) => e.courseId === props.id);

  async function buy(c: Course) {
    setBusy(true);
    setError(null);
    try {
      const payment = await paymentWindow();
      const order = await api.checkout(c.id);
      saveInFlight(sessionStorage, local, {
        orderId: order.orderId,
        courseId: order.courseId,
        amount: order.amount,
        startedAt: new Date().toISOString(),
      });
      await payment.open(paymentRequest(order, window.location.origin));
    } catch (e) {
      clearInFlight(sessionStorage);
      setError(e);
      setBusy(false);
    }
  }

  if (course.isPending) return <Loading />;
  if (course.error) return <ErrorBox error={course.error} onRetry={() => void course.refetch()} />;
  const c = course.data;
  return (
    <>
      <h1>{c.title}</h1>
      <p class="price">{t.price(c.price)}</p>
      {!session ? (
        <p>{t.signInFirst}</p>
      ) : mine?.status === 'ENROLLED' ? (
        <p class="enrolled">
          {t.enrolled} <Link href="/me">{t.goMine}</Link>
        </p>
      ) : (
        <>
          {mine?.status === 'REFUNDED' && <p>{t.refunded}</p>}
          <button type="button" class="buy primary" disabled={busy || enrollments.isPending} onClick={() => void buy(c)}>
            {busy ? t.buying : t.buy}
          </button>
        </>
      )}
      {error !== null && <ErrorBox error={error} onRetry={() => void buy(c)} />}
    </>
  );
}

function SuccessPage() {
  const { api, session: sessionStorage, local } = useEnv();
  const t = useStrings();
  const queryClient = useQueryClient();
  const [params] = useState(() => parseSuccess(window.location.search));
  const [outcome, setOutcome] = useState<ConfirmOutcome | null>(null);
  const started = useRef(false);

  function run(retry: boolean) {
    if (!params) return;
    setOutcome(null);
    void confirmPayment(
      { confirm: api.confirm, settle: api.order, queryClient, session: sessionStorage, local },
      params,
      retry,
    ).then(setOutcome);
  }
  useEffect(() => {
    if (started.current) return;
    started.current = true;
    if (params) {
      run(false);
    } else {
      clearInFlight(sessionStorage);
    }
  }, []);

  const courseId = outcome?.kind === 'enrolled' ? outcome.result.courseId : null;
  const course = useQuery({
    queryKey: ['course', courseId ?? ''],
    queryFn: () => api.course(courseId ?? ''),
    enabled: courseId !== null,
  });

  if (!params) {
    return (
      <>
        <h1>{t.failTitle}</h1>
        <p role="alert">{t.badSuccessUrl}</p>
      </>
    );
  }
  if (outcome === null) {
    return (
      <>
        <h1>{t.successTitle}</h1>
        <p class="confirming" aria-live="polite">
          {t.confirming}
        </p>
      </>
    );
  }
  if (outcome.kind === 'error') {
    return (
      <>
        <h1>{t.failTitle}</h1>
        <ErrorBox error={outcome.error} onRetry={outcome.final ? undefined : () => run(true)} />
      </>
    );
  }
  return (
    <>
      <h1>{t.successTitle}</h1>
      <p class="success">{t.successBody(course.data?.title ?? '…')}</p>
      <p>
        {t.enrollmentId}: <code class="enrollment-id">{outcome.result.enrollmentId}</code>
      </p>
      <p>
        <Link href="/me" class="button">
          {t.goMine}
        </Link>
      </p>
    </>
  );
}

function FailPage() {
  const { locale, session: sessionStorage, local } = useEnv();
  const t = useStrings();
  const messages = useMessages();
  const [fail] = useState(() => parseFail(window.location.search));
  useEffect(() => {
    clearInFlight(sessionStorage);
    if (fail.orderId) forgetPending(local, fail.orderId);
  }, []);
  const code = failCode(fail.code);
  return (
    <>
      <h1>{t.failTitle}</h1>
      <div class="error" role="alert" data-code={code}>
        <p class="error-message">
          {code === 'PAY_PROCESS_CANCELED'
            ? t.canceled
            : messages.isPending
              ? t.loading
              : errorMessage(code, locale, messages.data)}
        </p>
        <p class="error-meta">
          {t.errorCode}: <code>{fail.code}</code>
        </p>
      </div>
      <p>
        <Link href="/">{t.navCourses}</Link>
      </p>
    </>
  );
}

function ExamPanel(props: { enrollment: Enrollment }) {
  const { api } = useEnv();
  const t = useStrings();
  const [attemptId, setAttemptId] = useState<string | null>(null);
  const [score, setScore] = useState('');
  const [submitted, setSubmitted] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const inputId = `score-${props.enrollment.id}`;
  if (submitted !== null) return <p class="submitted">{t.submitted(submitted)}</p>;
  if (!attemptId) {
    return (
      <>
        <button
          type="button"
          class="start-exam"
          onClick={() => {
            setError(null);
            api.startExam(props.enrollment.id).then((a) => setAttemptId(a.id), setError);
          }}
        >
          {t.startExam}
        </button>
        {error !== null && <ErrorBox error={error} />}
      </>
    );
  }
  return (
    <form
      class="exam"
      onSubmit={(e) => {
        e.preventDefault();
        setError(null);
        api.submitExam(attemptId, Number(score)).then((s) => setSubmitted(s.score ?? Number(score)), setError);
      }}
    >
      <p>{t.attemptStarted}</p>
      <label for={inputId}>{t.scoreLabel}</label>{' '}
      <input
        id={inputId}
        type="number"
        min={0}
        max={100}
        required
        value={score}
        onInput={(e) => setScore(e.currentTarget.value)}
      />{' '}
      <button type="submit">{t.submitScore}</button>
      {error !== null && <ErrorBox error={error} />}
    </form>
  );
}

function MyCourses() {
  const { api, local } = useEnv();
  const t = useStrings();
  const session = useSession();
  const queryClient = useQueryClient();
  const [checking, setChecking] = useState(() => pendingOrders(local).length > 0);
  // QA 4: orders the buyer approved but never saw confirmed (tab closed). Reading an order makes
  // the server ask Toss and settle it; a final order is forgotten.
  useEffect(() => {
    if (!session) return;
    const ids = pendingOrders(local);
    if (ids.length === 0) return;
    setChecking(true);
    void Promise.all(
      ids.map((id) =>
        api.order(id).then(
          (o) => {
            if (o.status !== 'PENDING' && o.status !== 'CONFIRMING') forgetPending(local, id);
          },
          (e: unknown) => {
            if (e instanceof ApiError && !e.retryable) forgetPending(local, id);
          },
        ),
      ),
    ).then(async () => {
      await queryClient.invalidateQueries({ queryKey: ['enrollments'] });
      setChecking(false);
    });
  }, [session?.userId]);
  const enrollments = useEnrollments(session !== null && !checking);
  const courses = useQuery({ queryKey: ['courses'], queryFn: () => api.courses() });
  const title = (id: string) => courses.data?.find((c) => c.id === id)?.title ?? id;
  if (!session) {
    return (
      <>
        <h1>{t.mineTitle}</h1>
        <p>{t.signInFirst}</p>
      </>
    );
  }
  return (
    <>
      <h1>{t.mineTitle}</h1>
      {checking && <p aria-live="polite">{t.checkingOrders}</p>}
      {enrollments.isPending && !checking && <Loading />}
      {enrollments.error && <ErrorBox error={enrollments.error} onRetry={() => void enrollments.refetch()} />}
      {enrollments.data?.length === 0 && <p>{t.noEnrollments}</p>}
      <ul class="enrollments">
        {enrollments.data?.map((e) => (
          <li key={e.id} class={`enrollment ${e.status.toLowerCase()}`} data-course-id={e.courseId}>
            <h2>{title(e.courseId)}</h2>
            <p class="status">{e.status === 'ENROLLED' ? t.statusEnrolled : t.statusRefunded}</p>
            {e.status === 'ENROLLED' && <ExamPanel enrollment={e} />}
          </li>
        ))}
      </ul>
    </>
  );
}

function NotFound() {
  const t = useStrings();
  return (
    <>
      <h1>{t.notFound}</h1>
      <p>
        <Link href="/">{t.home}</Link>
      </p>
    </>
  );
}

export function route(path: string): ComponentChildren {
  const course = /^\/courses\/([0-9a-fA-F-]{36})$/.exec(path);
  if (path === '/') return <CourseList />;
  if (course?.[1]) return <CoursePage id={course[1]} />;
  if (path === '/payments/success') return <SuccessPage />;
  if (path === '/payments/fail') return <FailPage />;
  if (path === '/me') return <MyCourses />;
  return <NotFound />;
}

export function App(props: { env: Env; path: string }) {
  return (
    <EnvContext.Provider value={props.env}>
      <Header />
      <main id="main" tabIndex={-1}>
        {route(props.path)}
      </main>
    </EnvContext.Provider>
  );
}

