// problem+json answers as typed errors. The server answers every error as an RFC 9457 problem
// document carrying a stable `code`, a `retryable` flag and the `requestId` that its log line
// holds; clients branch on `code` only, never on the human-readable `title` or `detail`.

/** Codes the client itself produces when no problem document could be read. */
export const NETWORK_ERROR = 'E_NETWORK';
export const UNEXPECTED_RESPONSE = 'E_UNEXPECTED_RESPONSE';

export interface ProblemBody {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  requestId?: string;
  retryable?: boolean;
  providerCode?: string;
}

export class ApiError extends Error {
  /** HTTP status; 0 when the request never got an answer. */
  readonly status: number;
  /** The server's stable error code (`E_AMOUNT_MISMATCH`, ...) or one of the client's own. */
  readonly code: string;
  readonly retryable: boolean;
  /** `X-Request-Id` of the failed request: what support searches the logs for. */
  readonly requestId: string | null;
  /** How long to wait before retrying, from `Retry-After`; null when the server did not say. */
  readonly retryAfterMs: number | null;
  readonly detail: string | null;
  /** The provider's own code for a declined payment (`REJECT_CARD_COMPANY`, ...). */
  readonly providerCode: string | null;

  constructor(init: {
    status: number;
    code: string;
    retryable: boolean;
    requestId?: string | null;
    retryAfterMs?: number | null;
    detail?: string | null;
    providerCode?: string | null;
    message?: string;
  }) {
    super(init.message ?? init.code);
    this.name = 'ApiError';
    this.status = init.status;
    this.code = init.code;
    this.retryable = init.retryable;
    this.requestId = init.requestId ?? null;
    this.retryAfterMs = init.retryAfterMs ?? null;
    this.detail = init.detail ?? null;
    this.providerCode = init.providerCode ?? null;
  }
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (value == null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP date names its weekday and month; anything else ("-1", "soon") is unreadable.
  if (!/^[A-Za-z]{3}, /.test(v)) return null;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

function isProblem(body: unknown): body is ProblemBody {
  return typeof body === 'object' && body !== null && typeof (body as ProblemBody).code === 'string';
}

/** The typed error for a non-2xx answer whose body has already been parsed (or not). */
export function errorFromResponse(response: Response, body: unknown): ApiError {
  const requestId = response.headers.get('x-request-id');
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
  if (isProblem(body)) {
    return new ApiError({
      status: response.status,
      code: body.code ?? UNEXPECTED_RESPONSE,
      retryable: body.retryable === true,
      requestId: body.requestId ?? requestId,
      retryAfterMs,
      detail: body.detail ?? null,
      providerCode: body.providerCode ?? null,
      message: body.title ?? body.code,
    });
  }
  // Not a problem document (a proxy's HTML page, ...): a gateway error is worth retrying.
  return new ApiError({
    status: response.status,
    code: UNEXPECTED_RESPONSE,
    retryable: response.status === 502 || response.status === 503 || response.status === 504,
    requestId,
    retryAfterMs,
  });
}

/** The request failed before any answer (offline, connection reset, CORS refusal). */
export function networkError(cause: unknown): ApiError {
  return new ApiError({
    status: 0,
    code: NETWORK_ERROR,
    retryable: true,
    message: cause instanceof Error ? cause.message : String(cause),
  });
}
