//! The Toss Payments API client.
//!
//! Wire types ([`wire`]) stay Toss-shaped; callers get [`PaymentView`], already parsed into
//! domain types, and [`TossError`], which says first of all whether the outcome of a call is
//! *known*. That distinction is the whole point: a confirm that timed out or got a 5xx may have
//! charged the buyer, so it is resolved by looking the payment up, never by guessing
//! (an integration that maps every Toss error to "failed" shows a paid order as failed).
//!
//! What the client assumes of Toss, and where it comes from, is in `docs/toss.md`.

pub mod wire;

pub use wire::RefundReceiveAccount;

use base64::Engine;
use domain::{IdempotencyKey, Money, OrderId, PaymentKey, PaymentStatus};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What coursepay needs from a Toss Payment object, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentView {
    pub payment_key: PaymentKey,
    pub order_id: OrderId,
    pub status: PaymentStatus,
    pub total_amount: Money,
    pub balance_amount: Money,
    pub method: Option<String>,
    pub approved_at: Option<OffsetDateTime>,
    pub secret: Option<String>,
    pub last_transaction_key: Option<String>,
    pub cancels: Vec<CancelView>,
    /// A virtual account's `dueDate`: after it the account takes no deposit.
    pub deposit_due_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelView {
    pub amount: Money,
    pub transaction_key: String,
    pub reason: String,
    pub canceled_at: Option<OffsetDateTime>,
}

impl PaymentView {
    fn read(p: wire::PaymentRead<'_>) -> Result<Self, TossError> {
        let bad = |what: &str| TossError::Protocol(format!("payment object: {what}"));
        let cancels = p
            .cancels
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                Ok(CancelView {
                    amount: Money::new(c.cancel_amount).map_err(|_| bad("cancelAmount"))?,
                    transaction_key: c.transaction_key.into_owned(),
                    reason: c.cancel_reason.map(Cow::into_owned).unwrap_or_default(),
                    canceled_at: c.canceled_at.as_deref().and_then(parse_time),
                })
            })
            .collect::<Result<Vec<_>, TossError>>()?;
        Ok(PaymentView {
            payment_key: PaymentKey::parse(&p.payment_key).map_err(|_| bad("paymentKey"))?,
            order_id: OrderId::parse(&p.order_id).map_err(|_| bad("orderId"))?,
            status: p.status.parse().map_err(|_| bad("status"))?,
            total_amount: Money::new(p.total_amount).map_err(|_| bad("totalAmount"))?,
            balance_amount: Money::new(p.balance_amount).map_err(|_| bad("balanceAmount"))?,
            method: p.method.map(Cow::into_owned),
            approved_at: p.approved_at.as_deref().and_then(parse_time),
            secret: p.secret.map(Cow::into_owned),
            last_transaction_key: p.last_transaction_key.map(Cow::into_owned),
            cancels,
            deposit_due_at: p
                .virtual_account
                .and_then(wire::Lenient::read)
                .and_then(|va| va.due_date)
                .and_then(wire::Lenient::read)
                .as_deref()
                .and_then(parse_time),
        })
    }

    /// Whether this is a virtual-account payment.
    pub fn is_virtual_account(&self) -> bool {
        self.method
            .as_deref()
            .is_some_and(is_virtual_account_method)
    }

    /// A virtual account closed (CANCELED) while no deposit was held: no money ever moved, or
    /// a reversed deposit already went back to the buyer. Toss leaves `approvedAt` null until a
    /// deposit arrives (and clears it when a deposit is reversed), so such a CANCELED payment
    /// is not a refund of captured money and must never be settled as one.
    pub fn is_closed_unpaid_account(&self) -> bool {
        self.status == PaymentStatus::Canceled
            && self.is_virtual_account()
            && self.approved_at.is_none()
    }
}

/// Whether a Payment's `method` is a virtual account, in either of Toss's spellings (Korean by
/// default, English under `Accept-Language: en-US`).
pub fn is_virtual_account_method(method: &str) -> bool {
    matches!(method, "가상계좌" | "VIRTUAL_ACCOUNT")
}

/// Toss's timestamps: ISO-8601 with an offset (`approvedAt`), or Korean local time without
/// one (a virtual account's `dueDate`, a webhook's `createdAt`).
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    use time::macros::{format_description, offset};
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let local = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let seconds = s.get(..19)?;
    time::PrimitiveDateTime::parse(seconds, &local)
        .ok()
        .map(|t| t.assume_offset(offset!(+9)))
}

/// Toss's error codes that mean "the call may or may not have taken effect; ask again".
/// Toss publishes no retryable flag: this goes by code, not by HTTP status (PROVIDER_ERROR is a
/// 400, FAILED_METHOD_HANDLING_CANCEL a 500 that the 5xx rule below covers).
const UNKNOWN_OUTCOME_CODES: &[&str] = &[
    "PROVIDER_ERROR",
    "FAILED_INTERNAL_SYSTEM_PROCESSING",
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
    "UNKNOWN_PAYMENT_ERROR",
    "COMMON_ERROR",
    "IDEMPOTENT_REQUEST_PROCESSING",
    "FORBIDDEN_CONSECUTIVE_REQUEST",
    "FAILED_REFUND_PROCESS",
    "FAILED_PARTIAL_REFUND",
];

/// Codes that mean our own configuration is wrong (bad key): the buyer's payment was not
/// touched, and retrying will not help until an operator fixes it.
const CONFIGURATION_CODES: &[&str] = &[
    "UNAUTHORIZED_KEY",
    "INCORRECT_BASIC_AUTH_FORMAT",
    "INVALID_API_KEY",
    "INVALID_IDEMPOTENCY_KEY",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TossError {
    /// Toss answered with an error body.
    #[error("toss answered {http_status} {code}")]
    Api {
        http_status: u16,
        code: String,
        message: String,
    },
    /// No answer in time: the request may have been processed.
    #[error("toss did not answer in time")]
    Timeout,
    /// The connection failed after the request may have left (reset, closed mid-answer).
    #[error("connection to toss failed: {0}")]
    Network(String),
    /// The connection could not be opened: the request certainly did not reach Toss.
    #[error("could not connect to toss: {0}")]
    Connect(String),
    /// An answer we could not understand (not JSON, missing fields).
    #[error("unexpected answer from toss: {0}")]
    Protocol(String),
}

/// How the caller must treat an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Toss definitively refused; nothing was charged/changed (card declined, invalid request).
    Refused,
    /// Toss says this payment was already processed: look it up.
    AlreadyProcessed,
    /// Not known whether it took effect: look it up, retry with the same Idempotency-Key.
    Unknown,
    /// Certainly not processed and Toss (or the path to it) is down: safe to retry later.
    Unavailable,
    /// Our own credentials/configuration are wrong.
    Misconfigured,
}

impl TossError {
    pub fn outcome(&self) -> Outcome {
        match self {
            TossError::Api { code, .. } if code == "ALREADY_PROCESSED_PAYMENT" => {
                Outcome::AlreadyProcessed
            }
            TossError::Api { code, .. } if UNKNOWN_OUTCOME_CODES.contains(&code.as_str()) => {
                Outcome::Unknown
            }
            TossError::Api { code, .. } if CONFIGURATION_CODES.contains(&code.as_str()) => {
                Outcome::Misconfigured
            }
            // A 5xx with a code we do not know: treat as unknown, never as refused.
            TossError::Api { http_status, .. } if *http_status >= 500 => Outcome::Unknown,
            TossError::Api { .. } => Outcome::Refused,
            TossError::Timeout | TossError::Network(_) | TossError::Protocol(_) => Outcome::Unknown,
            TossError::Connect(_) => Outcome::Unavailable,
        }
    }

    /// Whether this counts as a provider failure for the circuit breaker (5xx, timeouts,
    /// broken connections), as opposed to a normal business answer like a declined card.
    pub fn is_provider_failure(&self) -> bool {
        match self {
            TossError::Api { http_status, .. } => *http_status >= 500,
            TossError::Timeout | TossError::Network(_) | TossError::Connect(_) => true,
            TossError::Protocol(_) => true,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            TossError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Toss does not know the payment looked up. Its lookup reference lists both
    /// `NOT_FOUND_PAYMENT` and the generic `NOT_FOUND` (404); both mean the same here.
    pub fn is_not_found(&self) -> bool {
        matches!(self, TossError::Api { code, .. } if NOT_FOUND_CODES.contains(&code.as_str()))
    }

    /// Toss refused because it is being polled too fast (403 `FORBIDDEN_CONSECUTIVE_REQUEST`),
    /// or this client is still backing off from such an answer.
    pub fn is_throttled(&self) -> bool {
        matches!(self, TossError::Api { code, .. } if code == THROTTLED)
    }
}

/// Lookup answers meaning "no such payment".
const NOT_FOUND_CODES: &[&str] = &["NOT_FOUND_PAYMENT", "NOT_FOUND"];
const THROTTLED: &str = "FORBIDDEN_CONSECUTIVE_REQUEST";
/// First wait after a throttled lookup; doubled on each further one, up to the maximum.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Lookup back-off shared by every clone of a client: after Toss answers
/// `FORBIDDEN_CONSECUTIVE_REQUEST` no lookup is sent until the wait is over (the caller gets
/// the same error without a request), and each further throttled answer doubles the wait.
/// Any other answer from a lookup resets it.
#[derive(Debug, Default)]
struct Backoff {
    until: Option<Instant>,
    next: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct TossConfig {
    /// e.g. `https://api.tosspayments.com` or the sandbox's base URL.
    pub api_base: String,
    /// `test_sk_…` / `live_sk_…`. Only ever placed in the Authorization header.
    pub secret_key: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

/// Toss API client. Cheap to clone.
#[derive(Clone)]
pub struct TossClient {
    http: reqwest::Client,
    base: String,
    /// `{base}/v1/payments/confirm`, parsed once: a confirm is the hot path, and parsing the
    /// address cost about 7 k instructions per confirm.
    confirm_url: reqwest::Url,
    /// `Basic base64(secret_key:)`, marked sensitive so no `Debug` of a request shows it.
    auth_header: reqwest::header::HeaderValue,
    lookup_backoff: Arc<Mutex<Backoff>>,
}

impl std::fmt::Debug for TossClient {
    // The Authorization header holds the secret key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TossClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Per-call context propagated to Toss (W3C trace context).
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Confirm,
    Lookup,
    Cancel,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Confirm => "confirm",
            Operation::Lookup => "lookup",
            Operation::Cancel => "cancel",
        }
    }
}

impl TossClient {
    pub fn new(config: TossConfig) -> Result<Self, TossError> {
        let http = reqwest::Client::builder()
            // Toss's API answers where it is asked. A redirect comes from something in between
            // (a proxy, a wrong TOSS_API_BASE); following it would replay a payment call, key
            // and all, somewhere else, or turn a confirm into a GET whose answer reads as a
            // decline. It is answered as a protocol error instead: outcome unknown, looked up.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| TossError::Protocol(format!("building http client: {e}")))?;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", config.secret_key));
        // Never echo the key: a key with a character a header cannot carry is named, not shown.
        let mut auth_header = reqwest::header::HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| TossError::Protocol("the secret key cannot go in a header".into()))?;
        auth_header.set_sensitive(true);
        let base = config.api_base.trim_end_matches('/').to_owned();
        let confirm_url = reqwest::Url::parse(&format!("{base}/v1/payments/confirm"))
            .map_err(|e| TossError::Protocol(format!("the Toss API base URL {base:?}: {e}")))?;
        Ok(Self {
            http,
            base,
            confirm_url,
            auth_header,
            lookup_backoff: Arc::default(),
        })
    }

    pub async fn confirm(
        &self,
        payment_key: &PaymentKey,
        order_id: &OrderId,
        amount: Money,
        key: &IdempotencyKey,
        ctx: &CallContext,
    ) -> Result<PaymentView, TossError> {
        let body = wire::ConfirmRequest {
            payment_key: payment_key.as_str().to_owned(),
            order_id: order_id.as_str().to_owned(),
            amount: amount.won(),
        };
        let req = self
            .http
            .post(self.confirm_url.clone())
            .header("Idempotency-Key", key.as_str())
            .json(&body);
        self.send(req, ctx).await
    }

    pub async fn get_payment(
        &self,
        payment_key: &PaymentKey,
        ctx: &CallContext,
    ) -> Result<PaymentView, TossError> {
        let req = self.http.get(format!(
            "{}/v1/payments/{}",
            self.base,
            payment_key.as_str()
        ));
        self.lookup(req, ctx).await
    }

    pub async fn get_payment_by_order(
        &self,
        order_id: &OrderId,
        ctx: &CallContext,
    ) -> Result<PaymentView, TossError> {
        let req = self.http.get(format!(
            "{}/v1/payments/orders/{}",
            self.base,
            order_id.as_str()
        ));
        self.lookup(req, ctx).await
    }

    /// How long lookups are still held back after a `FORBIDDEN_CONSECUTIVE_REQUEST` (None: not
    /// backing off). The reconciler ends its pass early while this is set.
    pub fn lookup_backoff(&self) -> Option<Duration> {
        let b = self.lookup_backoff.lock().ok()?;
        b.until
            .and_then(|u| u.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    async fn lookup(
        &self,
        req: reqwest::RequestBuilder,
        ctx: &CallContext,
    ) -> Result<PaymentView, TossError> {
        if let Some(wait) = self.lookup_backoff() {
            return Err(TossError::Api {
                http_status: 403,
                code: THROTTLED.to_owned(),
                message: format!(
                    "backing off for {} ms before the next lookup",
                    wait.as_millis()
                ),
            });
        }
        let result = self.send(req, ctx).await;
        if let Ok(mut b) = self.lookup_backoff.lock() {
            match &result {
                Err(e) if e.is_throttled() => {
                    let wait = b.next.unwrap_or(BACKOFF_FIRST);
                    b.until = Some(Instant::now() + wait);
                    b.next = Some((wait * 2).min(BACKOFF_MAX));
                    tracing::warn!(target: "coursepay::toss", wait_ms = wait.as_millis() as u64, "Toss throttled a lookup; backing off");
                }
                // Timeouts and broken connections say nothing about throttling.
                Err(TossError::Timeout | TossError::Network(_) | TossError::Connect(_)) => {}
                _ => *b = Backoff::default(),
            }
        }
        result
    }

    /// Cancel (refund) all of a payment (`amount: None`) or part of it. `refundable` is the
    /// balance we believe remains: Toss refuses with NOT_MATCHES_REFUNDABLE_AMOUNT if it differs,
    /// so a refund computed from a stale balance can never go through.
    pub async fn cancel(
        &self,
        payment_key: &PaymentKey,
        reason: &str,
        amount: Option<Money>,
        refundable: Option<Money>,
        key: &IdempotencyKey,
        ctx: &CallContext,
    ) -> Result<PaymentView, TossError> {
        self.cancel_to_account(payment_key, reason, amount, refundable, None, key, ctx)
            .await
    }

    /// [`cancel`](Self::cancel) with Toss's `refundReceiveAccount`, which Toss requires to
    /// cancel a virtual-account payment after its deposit (before the deposit a full cancel
    /// needs none: it closes the account).
    #[allow(clippy::too_many_arguments)] // Toss's cancel body, field for field
    pub async fn cancel_to_account(
        &self,
        payment_key: &PaymentKey,
        reason: &str,
        amount: Option<Money>,
        refundable: Option<Money>,
        refund_account: Option<&RefundReceiveAccount>,
        key: &IdempotencyKey,
        ctx: &CallContext,
    ) -> Result<PaymentView, TossError> {
        let body = wire::CancelRequest {
            cancel_reason: reason.to_owned(),
            cancel_amount: amount.map(Money::won),
            refundable_amount: refundable.map(Money::won),
            refund_receive_account: refund_account.cloned(),
        };
        let req = self
            .http
            .post(format!(
                "{}/v1/payments/{}/cancel",
                self.base,
                payment_key.as_str()
            ))
            .header("Idempotency-Key", key.as_str())
            .json(&body);
        self.send(req, ctx).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        ctx: &CallContext,
    ) -> Result<PaymentView, TossError> {
        let mut req = req
            .header(reqwest::header::AUTHORIZATION, self.auth_header.clone())
            .header("Accept-Language", "en-US");
        if let Some(tp) = &ctx.traceparent {
            req = req.header("traceparent", tp);
        }
        let resp = req.send().await.map_err(classify_send_error)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(classify_send_error)?;
        decode_answer(status, &bytes)
    }
}

/// Decodes one Toss answer (HTTP status and body) the way the client does for every call: a
/// 2xx is a Payment object, anything else an error body. Public so recorded answers can be
/// fed through exactly the code a live call uses.
pub fn decode_answer(status: u16, body: &[u8]) -> Result<PaymentView, TossError> {
    if (300..400).contains(&status) {
        return Err(TossError::Protocol(format!(
            "HTTP {status}: a redirect, which Toss's API never answers (check TOSS_API_BASE and any proxy in between)"
        )));
    }
    if (200..300).contains(&status) {
        let payment: wire::PaymentRead = serde_json::from_slice(body)
            .map_err(|e| TossError::Protocol(format!("payment body: {e}")))?;
        PaymentView::read(payment)
    } else {
        match serde_json::from_slice::<wire::ErrorBody>(body) {
            Ok(err) => Err(TossError::Api {
                http_status: status,
                code: err.code,
                message: err.message,
            }),
            // A proxy's HTML 502 page and the like: keep the status, invent no code.
            Err(_) => Err(TossError::Api {
                http_status: status,
                code: format!("HTTP_{status}"),
                message: String::new(),
            }),
        }
    }
}

fn classify_send_error(e: reqwest::Error) -> TossError {
    if e.is_timeout() {
        TossError::Timeout
    } else if e.is_connect() {
        // Host and port (never the path or the Authorization header) and what to check.
        let target = e
            .url()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or("?"),
                    u.port_or_known_default().unwrap_or(0)
                )
            })
            .unwrap_or_else(|| "the provider".to_owned());
        let cause = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.without_url().to_string());
        TossError::Connect(format!(
            "{target}: {cause} (check TOSS_API_BASE and that this host can reach it)"
        ))
    } else {
        TossError::Network(e.without_url().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> TossError {
        TossError::Api {
            http_status: status,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn outcomes_follow_codes_not_statuses() {
        assert_eq!(api(400, "PROVIDER_ERROR").outcome(), Outcome::Unknown);
        assert_eq!(api(403, "REJECT_CARD_PAYMENT").outcome(), Outcome::Refused);
        assert_eq!(
            api(400, "ALREADY_PROCESSED_PAYMENT").outcome(),
            Outcome::AlreadyProcessed
        );
        assert_eq!(api(502, "HTTP_502").outcome(), Outcome::Unknown);
        assert_eq!(
            api(401, "UNAUTHORIZED_KEY").outcome(),
            Outcome::Misconfigured
        );
        assert_eq!(TossError::Timeout.outcome(), Outcome::Unknown);
        assert_eq!(
            TossError::Connect("x".into()).outcome(),
            Outcome::Unavailable
        );
        assert!(!api(403, "REJECT_CARD_PAYMENT").is_provider_failure());
        assert!(api(500, "FAILED_INTERNAL_SYSTEM_PROCESSING").is_provider_failure());
    }

    /// A redirect is not followed: the payment call is not replayed at another address (which
    /// would also see the key), and the answer is a protocol error, whose outcome is unknown
    /// (looked up), never a decline.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = requests.clone();
        let target = base.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut head = vec![0u8; 8192];
                let n = conn.read(&mut head).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&head[..n]).into_owned();
                seen.lock()
                    .unwrap()
                    .push(text.lines().next().unwrap_or("").to_owned());
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}/elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        let c = TossClient::new(TossConfig {
            api_base: base,
            secret_key: "test_sk_supersecret".into(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
        })
        .unwrap();
        let order = OrderId::parse("order-123456").unwrap();
        let err = c
            .confirm(
                &PaymentKey::parse("tgen_20240101abcdef").unwrap(),
                &order,
                Money::new(10_000).unwrap(),
                &IdempotencyKey::for_confirm(&order),
                &CallContext::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, TossError::Protocol(_)), "{err:?}");
        assert_eq!(err.outcome(), Outcome::Unknown);
        assert!(err.is_provider_failure());
        let requests = requests.lock().unwrap().clone();
        assert_eq!(
            requests,
            ["POST /v1/payments/confirm HTTP/1.1"],
            "followed: {requests:?}"
        );
        // The same for a recorded answer fed through the decoder.
        assert!(matches!(
            decode_answer(302, b""),
            Err(TossError::Protocol(_))
        ));
    }

    /// A provider that cannot be reached is named by host and port, with what to check; the
    /// key never appears.
    #[tokio::test]
    async fn connect_errors_name_host_and_port() {
        let c = TossClient::new(TossConfig {
            api_base: "http://127.0.0.1:9".into(),
            secret_key: "test_sk_supersecret".into(),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
        })
        .unwrap();
        let order = OrderId::parse("order-123456").unwrap();
        let err = c
            .get_payment_by_order(&order, &CallContext::default())
            .await
            .unwrap_err();
        let TossError::Connect(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(msg.contains("127.0.0.1:9"), "{msg}");
        assert!(msg.contains("TOSS_API_BASE"), "{msg}");
        assert!(!err.to_string().contains("supersecret"));
    }

    #[test]
    fn times_with_and_without_offset() {
        let with = parse_time("2024-02-20T21:00:27+09:00").unwrap();
        assert_eq!(parse_time("2024-02-20T21:00:27"), Some(with));
        assert_eq!(parse_time("2024-02-20T21:00:27.000000"), Some(with));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn refund_account_debug_is_redacted() {
        let a = RefundReceiveAccount {
            bank: "20".into(),
            account_number: "1234567890".into(),
            holder_name: "김토스".into(),
        };
        let dbg = format!("{a:?}");
        assert!(
            !dbg.contains("1234567890") && !dbg.contains("김토스"),
            "{dbg}"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let c = TossClient::new(TossConfig {
            api_base: "http://127.0.0.1:1".into(),
            secret_key: "test_sk_supersecret".into(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        })
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("supersecret"));
        assert!(!dbg.contains("Basic"));
    }

    #[test]
    fn parses_toss_payment() {
        let json = serde_json::json!({
            "version": "2022-11-16", "paymentKey": "tgen_abc", "type": "NORMAL",
            "orderId": "order-123", "orderName": "Course A", "mId": "tosspayments",
            "currency": "KRW", "method": "카드", "totalAmount": 10000, "balanceAmount": 10000,
            "status": "DONE", "requestedAt": "2024-01-01T00:00:00+09:00",
            "approvedAt": "2024-01-01T00:00:05+09:00", "someFutureField": {"x": 1}
        });
        let v = decode_answer(200, json.to_string().as_bytes()).unwrap();
        assert_eq!(v.status, PaymentStatus::Done);
        assert_eq!(v.total_amount.won(), 10000);
        assert!(v.approved_at.is_some());
    }

    /// The reader skips what it does not use, whatever its shape, copies strings only where an
    /// escape forces it, and still refuses an answer without a field it cannot work without.
    #[test]
    fn reads_only_what_it_needs() {
        let mut json = serde_json::json!({
            "paymentKey": "tgen_abc", "orderId": "order-123", "status": "CANCELED",
            "method": "가상계좌 \"VA\"", "totalAmount": 10000, "balanceAmount": 4000,
            "vat": "not a number", "card": {"issuerCode": "71", "amount": [1, 2]},
            "easyPay": null, "receipt": 7, "useEscrow": "maybe",
            "cancels": [{"cancelAmount": 6000, "cancelReason": "line\nbreak",
                         "transactionKey": "tx-1", "refundableAmount": "?",
                         "canceledAt": "2024-02-13T12:20:23+09:00"}],
            "virtualAccount": {"accountNumber": "X", "dueDate": "2024-02-20T23:59:59+09:00"}
        });
        let v = decode_answer(200, json.to_string().as_bytes()).unwrap();
        assert_eq!(v.balance_amount.won(), 4000);
        assert_eq!(v.method.as_deref(), Some("가상계좌 \"VA\""));
        assert_eq!(v.cancels.len(), 1);
        assert_eq!(v.cancels[0].reason, "line\nbreak");
        assert_eq!(v.cancels[0].transaction_key, "tx-1");
        assert!(v.cancels[0].canceled_at.is_some());
        assert!(v.deposit_due_at.is_some());
        for required in [
            "paymentKey",
            "orderId",
            "status",
            "totalAmount",
            "balanceAmount",
        ] {
            let mut without = json.clone();
            without.as_object_mut().unwrap().remove(required);
            let err = decode_answer(200, without.to_string().as_bytes()).unwrap_err();
            assert!(matches!(err, TossError::Protocol(_)), "{required}: {err:?}");
        }
        json["cancels"][0]
            .as_object_mut()
            .unwrap()
            .remove("transactionKey");
        assert!(decode_answer(200, json.to_string().as_bytes()).is_err());
        assert!(decode_answer(200, b"{\"paymentKey\": ").is_err());
        // A due date is not needed to settle a payment: an odd one reads as none.
        json["cancels"][0]["transactionKey"] = "tx-1".into();
        for odd in [
            serde_json::json!("not an object"),
            serde_json::json!({"dueDate": 20240220}),
            serde_json::json!([1, 2]),
        ] {
            json["virtualAccount"] = odd.clone();
            let v = decode_answer(200, json.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{odd}: {e}"));
            assert_eq!(v.deposit_due_at, None, "{odd}");
        }
    }
}
