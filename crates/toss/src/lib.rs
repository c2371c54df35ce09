//! The Toss Payments API client.
//!
//! Wire types ([`wire`]) stay Toss-shaped; callers get [`PaymentView`], already parsed into
//! domain types, and [`TossError`], which says first of all whether the outcome of a call is
//! *known*. That distinction is the whole point: a confirm that timed out or got a 5xx may have
//! charged the buyer, so it is resolved by looking the payment up, never by guessing (mapping
//! every Toss error to a plain failure would show "failed" for an order that was paid).

pub mod wire;

use base64::Engine;
use domain::{IdempotencyKey, Money, OrderId, PaymentKey, PaymentStatus};
use std::time::Duration;
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelView {
    pub amount: Money,
    pub transaction_key: String,
    pub reason: String,
    pub canceled_at: Option<OffsetDateTime>,
}

impl TryFrom<wire::Payment> for PaymentView {
    type Error = TossError;
    fn try_from(p: wire::Payment) -> Result<Self, TossError> {
        let bad = |what: &str| TossError::Protocol(format!("payment object: {what}"));
        let cancels = p
            .cancels
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                Ok(CancelView {
                    amount: Money::new(c.cancel_amount).map_err(|_| bad("cancelAmount"))?,
                    transaction_key: c.transaction_key,
                    reason: c.cancel_reason,
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
            method: p.method,
            approved_at: p.approved_at.as_deref().and_then(parse_time),
            secret: p.secret,
            last_transaction_key: p.last_transaction_key,
            cancels,
        })
    }
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Toss's error codes that mean "the call may or may not have taken effect; ask again".
/// Decided by code, not by HTTP status: Toss answers PROVIDER_ERROR with a 400.
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
    auth_header: String,
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
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| TossError::Protocol(format!("building http client: {e}")))?;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", config.secret_key));
        Ok(Self {
            http,
            base: config.api_base.trim_end_matches('/').to_owned(),
            auth_header: format!("Basic {token}"),
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
            .post(format!("{}/v1/payments/confirm", self.base))
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
        self.send(req, ctx).await
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
        self.send(req, ctx).await
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
        let body = wire::CancelRequest {
            cancel_reason: reason.to_owned(),
            cancel_amount: amount.map(Money::won),
            refundable_amount: refundable.map(Money::won),
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
            .header("Authorization", &self.auth_header)
            .header("Accept-Language", "en-US");
        if let Some(tp) = &ctx.traceparent {
            req = req.header("traceparent", tp);
        }
        let resp = req.send().await.map_err(classify_send_error)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(classify_send_error)?;
        if (200..300).contains(&status) {
            let payment: wire::Payment = serde_json::from_slice(&bytes)
                .map_err(|e| TossError::Protocol(format!("payment body: {e}")))?;
            PaymentView::try_from(payment)
        } else {
            match serde_json::from_slice::<wire::ErrorBody>(&bytes) {
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
}

fn classify_send_error(e: reqwest::Error) -> TossError {
    if e.is_timeout() {
        TossError::Timeout
    } else if e.is_connect() {
        TossError::Connect(e.without_url().to_string())
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
        let p: wire::Payment = serde_json::from_value(json).unwrap();
        let v = PaymentView::try_from(p).unwrap();
        assert_eq!(v.status, PaymentStatus::Done);
        assert_eq!(v.total_amount.won(), 10000);
        assert!(v.approved_at.is_some());
    }
}
