import { describe, expect, it } from 'vitest';
import { ApiError, createApi, errorMessage, parseRetryAfter } from '../src/index';

type Handler = (req: Request) => Response | Promise<Response>;

function fakeFetch(handler: Handler) {
  const seen: Request[] = [];
  const fetch = (async (input: Request | string, init?: RequestInit) => {
    // openapi-fetch passes a Request; the hand-written dev-token call passes (url, init).
    seen.push((typeof input === 'string' ? [input, init] : input) as Request);
    return handler(typeof input === 'string' ? new Request(input, init) : input);
  }) as unknown as typeof globalThis.fetch;
  return { fetch, seen };
}

const problem = (status: number, body: object, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/problem+json', ...headers },
  });

describe('parseRetryAfter', () => {
  it('reads delta seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter('0')).toBe(0);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
  });
  it('is null when absent or unreadable', () => {
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter('soon')).toBeNull();
    expect(parseRetryAfter('-1')).toBeNull();
  });
});

describe('createApi', () => {
  it('returns the body of a 2xx answer and sends the token and locale', async () => {
    const { fetch, seen } = fakeFetch(() =>
      Response.json({ items: [{ id: 'c1', title: 'A', price: 10000, currency: 'KRW', status: 'PUBLISHED' }] }),
    );
    const api = createApi({ baseUrl: 'http://shop.test', fetch, getToken: () => 'tok', getLocale: () => 'en' });
    const courses = await api.courses();
    expect(courses.map((c) => c.title)).toEqual(['A']);
    expect(seen[0]?.url).toBe('http://shop.test/v1/courses');
    expect(seen[0]?.headers.get('authorization')).toBe('Bearer tok');
    expect(seen[0]?.headers.get('accept-language')).toBe('en');
  });

  it('sends no Authorization header when signed out', async () => {
    const { fetch, seen } = fakeFetch(() => Response.json({ items: [] }));
    await createApi({ baseUrl: 'http://shop.test', fetch, getToken: () => null }).courses();
    expect(seen[0]?.headers.has('authorization')).toBe(false);
  });

  it('turns problem+json into a typed ApiError', async () => {
    const { fetch, seen } = fakeFetch(() =>
      problem(
        503,
        { type: 'about:blank', title: 'x', status: 503, code: 'E_PG_UNAVAILABLE', requestId: 'req-1', retryable: true },
        { 'retry-after': '2', 'x-request-id': 'req-1' },
      ),
    );
    const api = createApi({ baseUrl: 'http://shop.test', fetch });
    const err = await api.confirm({ paymentKey: 'pk', orderId: 'order-1', amount: 10000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    const e = err as ApiError;
    expect([e.status, e.code, e.retryable, e.requestId, e.retryAfterMs]).toEqual([503, 'E_PG_UNAVAILABLE', true, 'req-1', 2000]);
    expect(seen[0]?.method).toBe('POST');
    expect(await seen[0]?.json()).toEqual({ paymentKey: 'pk', orderId: 'order-1', amount: 10000 });
  });

  it('keeps a declined payment final with its provider code', async () => {
    const { fetch } = fakeFetch(() =>
      problem(402, { status: 402, code: 'E_PAYMENT_REJECTED', requestId: 'r2', retryable: false, providerCode: 'REJECT_CARD_PAYMENT' }),
    );
    const e = (await createApi({ baseUrl: 'http://x', fetch }).confirm({ paymentKey: 'p', orderId: 'o', amount: 1 }).catch((x: unknown) => x)) as ApiError;
    expect([e.code, e.retryable, e.providerCode, e.retryAfterMs]).toEqual(['E_PAYMENT_REJECTED', false, 'REJECT_CARD_PAYMENT', null]);
  });

  it('maps a network failure and a non-problem gateway page to retryable client errors', async () => {
    const down = fakeFetch(() => {
      throw new TypeError('Failed to fetch');
    });
    const e1 = (await createApi({ baseUrl: 'http://x', fetch: down.fetch }).courses().catch((x: unknown) => x)) as ApiError;
    expect([e1.status, e1.code, e1.retryable]).toEqual([0, 'E_NETWORK', true]);

    const gateway = fakeFetch(() => new Response('<html>bad gateway</html>', { status: 502, headers: { 'x-request-id': 'gw' } }));
    const e2 = (await createApi({ baseUrl: 'http://x', fetch: gateway.fetch }).courses().catch((x: unknown) => x)) as ApiError;
    expect([e2.status, e2.code, e2.retryable, e2.requestId]).toEqual([502, 'E_UNEXPECTED_RESPONSE', true, 'gw']);

    const notFound = fakeFetch(() => new Response('nope', { status: 404 }));
    const e3 = (await createApi({ baseUrl: 'http://x', fetch: notFound.fetch }).courses().catch((x: unknown) => x)) as ApiError;
    expect(e3.retryable).toBe(false);
  });

  it('encodes path parameters', async () => {
    const { fetch, seen } = fakeFetch(() => Response.json({ orderId: 'a', courseId: 'c', amount: 1, status: 'PAID', enrollmentId: null }));
    await createApi({ baseUrl: 'http://x', fetch }).order('a/b');
    expect(seen[0]?.url).toBe('http://x/v1/orders/a%2Fb');
  });
});

describe('devToken (development sign-in, outside the public contract)', () => {
  it('posts the user id and returns the token', async () => {
    const { fetch, seen } = fakeFetch(() =>
      Response.json({ accessToken: 't', tokenType: 'bearer', userId: 'u-1', expiresAt: '2026-01-01T12:00:00Z' }),
    );
    const t = await createApi({ baseUrl: 'http://x', fetch }).devToken('u-1');
    expect(t.accessToken).toBe('t');
    const [url, init] = (seen[0] as unknown as [string, RequestInit]) ?? [];
    expect(url).toBe('http://x/v1/dev/token');
    expect(JSON.parse(String(init.body))).toEqual({ userId: 'u-1' });
  });
  it('is a typed 404 where the server runs in production', async () => {
    const { fetch } = fakeFetch(() => problem(404, { status: 404, code: 'E_NOT_FOUND', requestId: 'r', retryable: false }));
    const e = (await createApi({ baseUrl: 'http://x', fetch }).devToken().catch((x: unknown) => x)) as ApiError;
    expect([e.status, e.code, e.retryable]).toEqual([404, 'E_NOT_FOUND', false]);
  });
});

describe('errorMessage', () => {
  const server = { 'ui.payment.error.E_AMOUNT_MISMATCH': '결제 금액이 주문 금액과 다릅니다.' };
  it("uses the server's message for its codes", () => {
    expect(errorMessage('E_AMOUNT_MISMATCH', 'ko', server)).toBe('결제 금액이 주문 금액과 다릅니다.');
  });
  it('has its own messages for client codes and a fallback, in both locales', () => {
    expect(errorMessage('E_NETWORK', 'ko', server)).toContain('네트워크');
    expect(errorMessage('E_NETWORK', 'en', undefined)).toContain('connection');
    expect(errorMessage('E_SOMETHING_NEW', 'en', server)).toContain('could not be completed');
    expect(errorMessage('E_SOMETHING_NEW', 'ko', undefined)).toContain('처리하지 못했습니다');
  });
});
