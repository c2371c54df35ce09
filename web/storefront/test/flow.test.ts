import { describe, expect, it, vi } from 'vitest';
import { ApiError, type Checkout, type ConfirmResult } from '@coursepay/client';
import { DevAuth, DEV_SESSION_KEY, chooseAuth } from '../src/auth';
import {
  IN_FLIGHT_KEY,
  clearInFlight,
  confirmPayment,
  failCode,
  forgetPending,
  loadInFlight,
  parseFail,
  parseSuccess,
  pendingOrders,
  rememberPending,
  retryDelay,
  saveInFlight,
} from '../src/flow';
import { SandboxWindow, TossSdkWindow, choosePaymentWindow, paymentRequest, type TossSdk } from '../src/payment-window';

class MemoryStorage {
  map = new Map<string, string>();
  getItem(k: string) {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.map.set(k, v);
  }
  removeItem(k: string) {
    this.map.delete(k);
  }
}

const inFlight = { orderId: 'order_abc123', courseId: 'c-1', amount: 10000, startedAt: '2026-01-01T00:00:00Z' };
const result: ConfirmResult = {
  enrollmentId: 'e-1',
  paymentId: 'p-1',
  orderId: 'order_abc123',
  courseId: 'c-1',
  amount: 10000,
  status: 'ENROLLED',
  approvedAt: '2026-01-01T00:00:01Z',
  replayed: false,
};

describe('in-flight payment state', () => {
  it('round-trips through sessionStorage and remembers the order in localStorage', () => {
    const s = new MemoryStorage();
    const l = new MemoryStorage();
    saveInFlight(s, l, inFlight);
    expect(loadInFlight(s)).toEqual(inFlight);
    expect(pendingOrders(l)).toEqual(['order_abc123']);
    clearInFlight(s);
    expect(loadInFlight(s)).toBeNull();
    expect(pendingOrders(l)).toEqual(['order_abc123']);
  });
  it('drops a damaged entry', () => {
    const s = new MemoryStorage();
    s.setItem(IN_FLIGHT_KEY, '{not json');
    expect(loadInFlight(s)).toBeNull();
    expect(s.getItem(IN_FLIGHT_KEY)).toBeNull();
    s.setItem(IN_FLIGHT_KEY, JSON.stringify({ orderId: 5 }));
    expect(loadInFlight(s)).toBeNull();
  });
  it('keeps at most ten pending orders, without duplicates', () => {
    const l = new MemoryStorage();
    for (let i = 0; i < 12; i++) rememberPending(l, `order-${i}`);
    rememberPending(l, 'order-5');
    const ids = pendingOrders(l);
    expect(ids).toHaveLength(10);
    expect(ids.at(-1)).toBe('order-5');
    expect(ids.filter((x) => x === 'order-5')).toHaveLength(1);
    forgetPending(l, 'order-5');
    expect(pendingOrders(l)).not.toContain('order-5');
    l.setItem('coursepay.payment.pendingOrders', '"oops"');
    expect(pendingOrders(l)).toEqual([]);
  });
});

describe('success and fail URLs', () => {
  it('reads the success query', () => {
    expect(parseSuccess('?paymentType=NORMAL&orderId=o1&paymentKey=pk&amount=10000')).toEqual({
      orderId: 'o1',
      paymentKey: 'pk',
      amount: 10000,
    });
  });
  it('refuses a malformed one (the server, not the page, judges a tampered amount)', () => {
    expect(parseSuccess('?orderId=o1&paymentKey=pk')).toBeNull();
    expect(parseSuccess('?orderId=o1&paymentKey=pk&amount=1e4')).toBeNull();
    expect(parseSuccess('?orderId=o1&paymentKey=pk&amount=-5')).toBeNull();
    expect(parseSuccess('?orderId=o1&paymentKey=pk&amount=100')).toEqual({ orderId: 'o1', paymentKey: 'pk', amount: 100 });
  });
  it('maps window failures to error codes', () => {
    expect(parseFail('?code=REJECT_CARD_COMPANY&message=x&orderId=o')).toEqual({ code: 'REJECT_CARD_COMPANY', message: 'x', orderId: 'o' });
    expect(failCode('REJECT_CARD_COMPANY')).toBe('E_PAYMENT_REJECTED');
    expect(failCode('PAY_PROCESS_CANCELED')).toBe('PAY_PROCESS_CANCELED');
    expect(parseFail('').code).toBe('UNKNOWN');
  });
});

describe('confirmPayment', () => {
  function deps(confirm: () => Promise<ConfirmResult>) {
    const session = new MemoryStorage();
    const local = new MemoryStorage();
    saveInFlight(session, local, inFlight);
    const invalidateQueries = vi.fn(async () => undefined);
    return { confirm, queryClient: { invalidateQueries }, session, local };
  }
  const params = { paymentKey: 'pk', orderId: 'order_abc123', amount: 10000 };

  it('invalidates the enrollment and course queries and clears the flow state on success', async () => {
    const d = deps(async () => result);
    const out = await confirmPayment(d as never, params);
    expect(out).toEqual({ kind: 'enrolled', result });
    const keys = d.queryClient.invalidateQueries.mock.calls.map((c) => (c as unknown as [{ queryKey: unknown }])[0].queryKey);
    expect(keys).toContainEqual(['enrollment', 'e-1']);
    expect(keys).toContainEqual(['course', 'c-1']);
    expect(loadInFlight(d.session)).toBeNull();
    expect(pendingOrders(d.local)).toEqual([]);
  });

  it('clears the flow state on a final error', async () => {
    const d = deps(async () => {
      throw new ApiError({ status: 400, code: 'E_AMOUNT_MISMATCH', retryable: false, requestId: 'r' });
    });
    const out = await confirmPayment(d as never, { ...params, amount: 100 });
    expect(out.kind).toBe('error');
    expect(out.kind === 'error' && [out.error.code, out.final]).toEqual(['E_AMOUNT_MISMATCH', true]);
    expect(loadInFlight(d.session)).toBeNull();
    expect(pendingOrders(d.local)).toEqual([]);
    expect(d.queryClient.invalidateQueries).not.toHaveBeenCalled();
  });

  it('keeps the flow state across a retryable error, then succeeds on retry', async () => {
    let calls = 0;
    const d = deps(async () => {
      calls += 1;
      if (calls === 1) throw new ApiError({ status: 503, code: 'E_PG_UNAVAILABLE', retryable: true, retryAfterMs: 2000 });
      return result;
    });
    const first = await confirmPayment(d as never, params);
    expect(first.kind === 'error' && first.final).toBe(false);
    expect(loadInFlight(d.session)).toEqual(inFlight);
    expect(pendingOrders(d.local)).toEqual(['order_abc123']);
    const second = await confirmPayment(d as never, params);
    expect(second.kind).toBe('enrolled');
    expect(loadInFlight(d.session)).toBeNull();
  });

  it('a retry reads the order (settling it) before confirming again; a first attempt does not', async () => {
    const calls: string[] = [];
    const d = {
      ...deps(async () => {
        calls.push('confirm');
        return { ...result, replayed: true };
      }),
      settle: async (orderId: string) => {
        calls.push(`settle ${orderId}`);
        throw new ApiError({ status: 503, code: 'E_PG_UNAVAILABLE', retryable: true });
      },
    };
    await confirmPayment(d as never, params);
    expect(calls).toEqual(['confirm']);
    const out = await confirmPayment(d as never, params, true);
    expect(calls).toEqual(['confirm', 'settle order_abc123', 'confirm']);
    expect(out.kind).toBe('enrolled');
  });

  it('treats a thrown non-ApiError as a retryable network error', async () => {
    const d = deps(async () => {
      throw new TypeError('boom');
    });
    const out = await confirmPayment(d as never, params);
    expect(out.kind === 'error' && [out.error.code, out.final]).toEqual(['E_NETWORK', false]);
  });
});

describe('retryDelay', () => {
  it('honours Retry-After, defaults to one second, and is bounded', () => {
    expect(retryDelay(new ApiError({ status: 503, code: 'x', retryable: true, retryAfterMs: 3000 }))).toBe(3000);
    expect(retryDelay(new ApiError({ status: 503, code: 'x', retryable: true }))).toBe(1000);
    expect(retryDelay(new ApiError({ status: 503, code: 'x', retryable: true, retryAfterMs: 10_000_000 }))).toBe(120_000);
  });
});

describe('payment windows', () => {
  const order: Checkout = {
    orderId: 'order_abc123',
    courseId: 'c-1',
    amount: 10000,
    currency: 'KRW',
    orderName: '강의 A',
    customerKey: 'u-1',
    status: 'PENDING',
    expiresAt: '2026-01-01T00:30:00Z',
    enrollmentId: null,
  };

  it('the sandbox window navigates to the sandbox checkout with Toss-style return URLs', async () => {
    const navigate = vi.fn();
    await new SandboxWindow('/toss-sandbox/sandbox/checkout', navigate).open(paymentRequest(order, 'http://shop.test'));
    const url = new URL(navigate.mock.calls[0]?.[0] as string, 'http://shop.test');
    expect(url.pathname).toBe('/toss-sandbox/sandbox/checkout');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      orderId: 'order_abc123',
      amount: '10000',
      orderName: '강의 A',
      successUrl: 'http://shop.test/payments/success',
      failUrl: 'http://shop.test/payments/fail',
    });
  });

  it('the Toss SDK window calls requestPayment with the order (SDK v2 shape)', async () => {
    const requestPayment = vi.fn(async () => undefined);
    const payment = vi.fn(() => ({ requestPayment }));
    const load = vi.fn(async () => ({ payment }) as unknown as TossSdk);
    await new TossSdkWindow('test_ck_x', load).open(paymentRequest(order, 'https://shop.example'));
    expect(load).toHaveBeenCalledWith('test_ck_x');
    expect(payment).toHaveBeenCalledWith({ customerKey: 'u-1' });
    expect(requestPayment).toHaveBeenCalledWith({
      method: 'CARD',
      amount: { currency: 'KRW', value: 10000 },
      orderId: 'order_abc123',
      orderName: '강의 A',
      successUrl: 'https://shop.example/payments/success',
      failUrl: 'https://shop.example/payments/fail',
    });
  });

  it('chooses the sandbox with the sandbox, else Toss with the build key or the server key', () => {
    const sandbox = { sandbox: true, sandboxCheckoutPath: '/toss-sandbox/sandbox/checkout', tossClientKey: 'test_ck_dev' };
    expect(choosePaymentWindow(sandbox, undefined).kind).toBe('sandbox');
    const live = { sandbox: false, sandboxCheckoutPath: null, tossClientKey: 'live_ck_server' };
    expect(choosePaymentWindow(live, undefined).kind).toBe('toss');
    const load = vi.fn(async () => ({ payment: () => ({ requestPayment: async () => undefined }) }) as unknown as TossSdk);
    void choosePaymentWindow(live, 'test_ck_build', { load }).open(paymentRequest(order, 'https://s'));
    expect(load).toHaveBeenCalledWith('test_ck_build');
    expect(() => choosePaymentWindow({ ...live, tossClientKey: '' }, undefined)).toThrow();
  });
});

describe('development sign-in', () => {
  const token = (userId: string) => ({
    accessToken: `tok-${userId}`,
    tokenType: 'bearer',
    userId,
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
  });

  it('mints a token for a new user and keeps it for the next visit', async () => {
    const storage = new MemoryStorage();
    const devToken = vi.fn(async (userId?: string) => token(userId ?? 'u-new'));
    const auth = new DevAuth({ devToken } as never, storage);
    await auth.init();
    expect(auth.session()).toBeNull();
    await auth.signIn();
    expect(auth.session()?.userId).toBe('u-new');
    const again = new DevAuth({ devToken } as never, storage);
    await again.init();
    expect(again.session()?.accessToken).toBe('tok-u-new');
    expect(devToken).toHaveBeenCalledTimes(1);
    await again.signOut();
    expect(storage.getItem(DEV_SESSION_KEY)).toBeNull();
  });

  it('is used unless Supabase is configured at build time', () => {
    const api = { devToken: vi.fn() };
    expect(chooseAuth({}, api as never, new MemoryStorage()).kind).toBe('dev');
    expect(chooseAuth({ VITE_SUPABASE_URL: 'https://p.supabase.co' }, api as never, new MemoryStorage()).kind).toBe('dev');
    expect(
      chooseAuth({ VITE_SUPABASE_URL: 'https://p.supabase.co', VITE_SUPABASE_ANON_KEY: 'anon' }, api as never, new MemoryStorage()).kind,
    ).toBe('supabase');
  });

  it('renews an expired token for the same user', async () => {
    const storage = new MemoryStorage();
    storage.setItem(DEV_SESSION_KEY, JSON.stringify({ accessToken: 'old', userId: 'u-1', expiresAt: Date.now() - 1 }));
    const devToken = vi.fn(async (userId?: string) => token(userId ?? 'other'));
    const auth = new DevAuth({ devToken } as never, storage);
    await auth.init();
    expect(devToken).toHaveBeenCalledWith('u-1');
    expect(auth.session()?.accessToken).toBe('tok-u-1');
  });
});
