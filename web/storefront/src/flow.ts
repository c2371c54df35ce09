// The payment flow's state, kept apart from the views so it can be tested without a browser.
//
// - The in-flight payment (orderId, courseId, amount) lives in sessionStorage from checkout
//   until the success or fail page ends it (cleared on success, on the fail page and on a
//   final error; kept across a retryable error so the retry still knows the order).
// - Orders whose outcome the buyer may not have seen (the tab closed between the payment window
//   and our success page) are remembered in localStorage by id only; "my courses" asks the
//   server about each (GET /v1/orders/{orderId} settles an order the buyer approved) and forgets
//   it once the order is final.
import type { QueryClient } from '@tanstack/query-core';
import { ApiError, type ConfirmRequest, type ConfirmResult } from '@coursepay/client';

export const IN_FLIGHT_KEY = 'coursepay.payment.inFlight';
export const PENDING_KEY = 'coursepay.payment.pendingOrders';

export interface InFlightPayment {
  orderId: string;
  courseId: string;
  amount: number;
  startedAt: string;
}

type KV = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

export function saveInFlight(session: KV, local: KV, p: InFlightPayment): void {
  session.setItem(IN_FLIGHT_KEY, JSON.stringify(p));
  rememberPending(local, p.orderId);
}

export function loadInFlight(session: KV): InFlightPayment | null {
  const raw = session.getItem(IN_FLIGHT_KEY);
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as Partial<InFlightPayment>;
    if (typeof v.orderId === 'string' && typeof v.courseId === 'string' && typeof v.amount === 'number') {
      return { orderId: v.orderId, courseId: v.courseId, amount: v.amount, startedAt: String(v.startedAt ?? '') };
    }
  } catch {
    // A damaged entry is as good as none.
  }
  session.removeItem(IN_FLIGHT_KEY);
  return null;
}

export function clearInFlight(session: KV): void {
  session.removeItem(IN_FLIGHT_KEY);
}

export function pendingOrders(local: KV): string[] {
  try {
    const v: unknown = JSON.parse(local.getItem(PENDING_KEY) ?? '[]');
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

export function rememberPending(local: KV, orderId: string): void {
  const ids = pendingOrders(local).filter((id) => id !== orderId);
  // Bounded: only the most recent few matter.
  local.setItem(PENDING_KEY, JSON.stringify([...ids, orderId].slice(-10)));
}

export function forgetPending(local: KV, orderId: string): void {
  local.setItem(PENDING_KEY, JSON.stringify(pendingOrders(local).filter((id) => id !== orderId)));
}

export type SuccessParams = ConfirmRequest;

/** The success URL's query (`paymentKey`, `orderId`, `amount`), or null when malformed. */
export function parseSuccess(search: string): SuccessParams | null {
  const q = new URLSearchParams(search);
  const paymentKey = q.get('paymentKey');
  const orderId = q.get('orderId');
  const amountRaw = q.get('amount');
  if (!paymentKey || !orderId || !amountRaw || !/^\d{1,15}$/.test(amountRaw)) return null;
  return { paymentKey, orderId, amount: Number(amountRaw) };
}

export interface FailParams {
  code: string;
  message: string | null;
  orderId: string | null;
}

export function parseFail(search: string): FailParams {
  const q = new URLSearchParams(search);
  return { code: q.get('code') ?? 'UNKNOWN', message: q.get('message'), orderId: q.get('orderId') };
}

/** Provider failure codes from the payment window mapped to the server's error codes. */
export function failCode(providerCode: string): string {
  return providerCode === 'PAY_PROCESS_CANCELED' || providerCode === 'USER_CANCEL'
    ? 'PAY_PROCESS_CANCELED'
    : 'E_PAYMENT_REJECTED';
}

export interface ConfirmDeps {
  confirm: (body: ConfirmRequest) => Promise<ConfirmResult>;
  /** GET /v1/orders/{orderId}: the server asks Toss about an open order and settles it. */
  settle?: (orderId: string) => Promise<unknown>;
  queryClient: Pick<QueryClient, 'invalidateQueries'>;
  session: KV;
  local: KV;
}

export type ConfirmOutcome =
  | { kind: 'enrolled'; result: ConfirmResult }
  | { kind: 'error'; error: ApiError; final: boolean };

/**
 * Confirm the payment the success URL describes. A retry (after a retryable error: Toss down or
 * slow, outcome unknown, confirm in progress) first reads the order, which makes the server ask
 * Toss and settle it, then confirms again: a settled order answers the confirm as a replay with
 * the same enrollment, a released one is confirmed afresh. On success: invalidate
 * ['enrollment', enrollmentId], ['course', courseId] (and the enrollment list), clear the
 * in-flight payment and forget the pending order. On a final error: clear the in-flight payment
 * (the order is not retried from here). A retryable error keeps both so the buyer can retry.
 */
export async function confirmPayment(
  deps: ConfirmDeps,
  params: SuccessParams,
  retry = false,
): Promise<ConfirmOutcome> {
  try {
    if (retry && deps.settle) {
      // Best effort: whatever it answers, the confirm below gives the verdict.
      await deps.settle(params.orderId).catch(() => undefined);
    }
    const result = await deps.confirm(params);
    await Promise.all([
      deps.queryClient.invalidateQueries({ queryKey: ['enrollment', result.enrollmentId] }),
      deps.queryClient.invalidateQueries({ queryKey: ['course', result.courseId] }),
      deps.queryClient.invalidateQueries({ queryKey: ['enrollments'] }),
    ]);
    clearInFlight(deps.session);
    forgetPending(deps.local, result.orderId);
    return { kind: 'enrolled', result };
  } catch (e) {
    const error =
      e instanceof ApiError ? e : new ApiError({ status: 0, code: 'E_NETWORK', retryable: true, message: String(e) });
    const final = !error.retryable;
    if (final) {
      clearInFlight(deps.session);
      // A mismatch or decline leaves nothing to settle later.
      forgetPending(deps.local, params.orderId);
    }
    return { kind: 'error', error, final };
  }
}

/** Milliseconds until a retry is allowed: the server's Retry-After, else one second. */
export function retryDelay(error: ApiError): number {
  return Math.min(Math.max(error.retryAfterMs ?? 1000, 0), 120_000);
}
