// Where the buyer pays. Two implementations of one interface:
// - SandboxWindow: the built-in Toss sandbox's payment window (development), a plain page that
//   redirects to successUrl/failUrl exactly like Toss does.
// - TossSdkWindow: Toss Payments SDK v2 (`loadTossPayments(clientKey).payment({customerKey})
//   .requestPayment({method: 'CARD', ...})`, redirect mode). The SDK script is fetched from
//   Toss at run time, so it is loaded only when a real client key is configured; tests drive it
//   through an injected loader.
import type { Checkout } from '@coursepay/client';

export interface PaymentRequest {
  orderId: string;
  orderName: string;
  amount: number;
  customerKey: string;
  successUrl: string;
  failUrl: string;
}

export interface PaymentWindow {
  readonly kind: 'sandbox' | 'toss';
  open(request: PaymentRequest): Promise<void>;
}

export function paymentRequest(order: Checkout, origin: string): PaymentRequest {
  return {
    orderId: order.orderId,
    orderName: order.orderName,
    amount: order.amount,
    customerKey: order.customerKey,
    successUrl: `${origin}/payments/success`,
    failUrl: `${origin}/payments/fail`,
  };
}

export class SandboxWindow implements PaymentWindow {
  readonly kind = 'sandbox';
  constructor(
    private readonly checkoutPath: string,
    private readonly navigate: (url: string) => void = (url) => window.location.assign(url),
  ) {}

  async open(r: PaymentRequest): Promise<void> {
    const q = new URLSearchParams({
      orderId: r.orderId,
      amount: String(r.amount),
      orderName: r.orderName,
      successUrl: r.successUrl,
      failUrl: r.failUrl,
    });
    this.navigate(`${this.checkoutPath}?${q.toString()}`);
  }
}

/** The slice of the Toss SDK v2 this storefront uses. */
export interface TossSdk {
  payment(params: { customerKey: string }): {
    requestPayment(request: {
      method: 'CARD';
      amount: { currency: 'KRW'; value: number };
      orderId: string;
      orderName: string;
      successUrl: string;
      failUrl: string;
    }): Promise<unknown>;
  };
}

export type TossLoader = (clientKey: string) => Promise<TossSdk>;

const loadFromToss: TossLoader = async (clientKey) => {
  const { loadTossPayments } = await import('@tosspayments/tosspayments-sdk');
  return (await loadTossPayments(clientKey)) as unknown as TossSdk;
};

export class TossSdkWindow implements PaymentWindow {
  readonly kind = 'toss';
  constructor(
    private readonly clientKey: string,
    private readonly load: TossLoader = loadFromToss,
  ) {}

  async open(r: PaymentRequest): Promise<void> {
    const sdk = await this.load(this.clientKey);
    await sdk.payment({ customerKey: r.customerKey }).requestPayment({
      method: 'CARD',
      amount: { currency: 'KRW', value: r.amount },
      orderId: r.orderId,
      orderName: r.orderName,
      successUrl: r.successUrl,
      failUrl: r.failUrl,
    });
  }
}

/**
 * The sandbox window when the server runs with its sandbox; otherwise Toss's SDK with the client
 * key from the build (`VITE_TOSS_CLIENT_KEY`) or the server (`GET /v1/config`).
 */
export function choosePaymentWindow(
  config: { sandbox: boolean; sandboxCheckoutPath?: string | null; tossClientKey: string },
  buildClientKey: string | undefined,
  deps: { navigate?: (url: string) => void; load?: TossLoader } = {},
): PaymentWindow {
  if (config.sandbox && config.sandboxCheckoutPath) {
    return new SandboxWindow(config.sandboxCheckoutPath, deps.navigate);
  }
  const key = buildClientKey || config.tossClientKey;
  if (!key) throw new Error('no Toss client key configured');
  return new TossSdkWindow(key, deps.load);
}
