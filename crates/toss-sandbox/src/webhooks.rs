//! Webhook delivery: Toss's PAYMENT_STATUS_CHANGED and DEPOSIT_CALLBACK events, posted to a
//! configured URL.
//!
//! Mirrored from Toss's webhook docs: sent when a payment becomes DONE, ABORTED, EXPIRED,
//! CANCELED or PARTIAL_CANCELED; body `{"eventType": "PAYMENT_STATUS_CHANGED", "createdAt":
//! "yyyy-MM-dd'T'HH:mm:ss.SSSSSS" (Korean time, no offset), "data": <Payment>}`; headers
//! `tosspayments-webhook-transmission-id` (the same on every retry of one event),
//! `tosspayments-webhook-transmission-time` and `tosspayments-webhook-transmission-retried-count`;
//! any answer but 200 is a failure, retried up to 7 times after 1, 4, 16, 64, 256, 1024 and
//! 4096 units (minutes at Toss; `webhook_retry_base` here, 1 s by default); events are
//! independent, so they can arrive out of order as they do from Toss. A virtual account's
//! deposit is announced by DEPOSIT_CALLBACK: `{"createdAt", "secret", "status": "DONE",
//! "transactionKey", "orderId"}` (the `secret` of the confirm answer, no paymentKey); the
//! sandbox adds `"eventType": "DEPOSIT_CALLBACK"` to it so a receiver can dispatch on one field
//! (Toss's own body may lack it: receivers should recognise the shape too).
//!
//! Not Toss: Toss does not sign payment webhooks. The sandbox adds `X-Timestamp` (unix seconds)
//! and `X-Signature: v1=<hex HMAC-SHA256(secret, "<X-Timestamp>.<body>")>` when a secret is set,
//! the scheme coursepay expects from a signing relay (docs/api.md, "Webhooks"); both are fresh on
//! every attempt and use real time, not the sandbox clock, because the receiver checks them
//! against its own clock.
//!
//! Sandbox choices: each partial cancel is its own event; `createdAt` is the sandbox-clock time
//! of the change; the transmission id is a UUID; the URL and secret are read again before every
//! attempt, so a retry follows a runtime change, and removing the URL abandons pending
//! retries; nothing is recorded for events that happen while no URL is set (Toss sends nothing
//! when no webhook is registered); redirects are not followed; each attempt times out after
//! 5 s.

use crate::clock::{iso_kst, webhook_created_at};
use crate::ledger::to_json;
use crate::{Sandbox, State};
use axum::body::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;
use time::OffsetDateTime;
use toss::wire::Payment;

/// Attempts after the first; Toss: "up to 7 retries".
pub(crate) const MAX_RETRIES: u32 = 7;
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    /// First attempt not answered yet.
    Pending,
    /// At least one attempt failed; another is scheduled.
    Retrying,
    Delivered,
    /// Every retry failed.
    Failed,
    /// The URL was removed before the event got through.
    Abandoned,
}

/// One event and its delivery attempts, as `GET /sandbox/webhooks` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub transmission_id: String,
    pub event_type: String,
    pub payment_key: String,
    pub order_id: String,
    pub payment_status: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
}

pub(crate) struct Job {
    index: usize,
    transmission_id: String,
    body: Bytes,
}

/// Records a delivery for each changed payment (under the state lock); the returned jobs are
/// started with [`start`] once the lock is released.
pub(crate) fn enqueue(
    st: &mut State,
    changed: Vec<Payment>,
    deposited: Vec<Payment>,
    now: OffsetDateTime,
) -> Vec<Job> {
    if st.webhook_url.is_none() {
        return Vec::new();
    }
    let status_changes = changed.into_iter().map(|payment| {
        let body = serde_json::json!({
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": webhook_created_at(now),
            "data": to_json(&payment),
        });
        ("PAYMENT_STATUS_CHANGED", payment, body)
    });
    let deposits = deposited.into_iter().map(|payment| {
        let body = serde_json::json!({
            "eventType": "DEPOSIT_CALLBACK",
            "createdAt": webhook_created_at(now),
            "secret": payment.secret,
            "status": payment.status,
            "transactionKey": payment.last_transaction_key,
            "orderId": payment.order_id,
        });
        ("DEPOSIT_CALLBACK", payment, body)
    });
    status_changes
        .chain(deposits)
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(event_type, payment, body)| {
            let transmission_id = uuid::Uuid::new_v4().to_string();
            st.deliveries.push(Delivery {
                transmission_id: transmission_id.clone(),
                event_type: event_type.into(),
                payment_key: payment.payment_key,
                order_id: payment.order_id,
                payment_status: payment.status,
                status: DeliveryStatus::Pending,
                attempts: 0,
                last_http_status: None,
                last_error: None,
            });
            Job {
                index: st.deliveries.len() - 1,
                transmission_id,
                // A `json!` value always serializes.
                body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            }
        })
        .collect()
}

/// Spawns one delivery task per job so the API answer never waits for a webhook.
pub(crate) fn start(sandbox: &Sandbox, jobs: Vec<Job>) {
    for job in jobs {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(run(sandbox.clone(), job));
            }
            // Called from plain synchronous code (no runtime to deliver on): say so in the
            // delivery list instead of panicking.
            Err(_) => sandbox.update(job.index, |d| {
                d.status = DeliveryStatus::Failed;
                d.last_error = Some("no async runtime to deliver on".into());
            }),
        }
    }
}

/// Delay before retry number `retry` (1-based): base × 4^(retry-1).
pub(crate) fn backoff(base: Duration, retry: u32) -> Duration {
    base.saturating_mul(4u32.saturating_pow(retry.saturating_sub(1)))
}

pub(crate) fn signature(secret: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1={}", hex::encode(mac.finalize().into_bytes())))
}

async fn run(sandbox: Sandbox, job: Job) {
    for attempt in 0..=MAX_RETRIES {
        if attempt > 0 {
            tokio::time::sleep(backoff(sandbox.inner.webhook_retry_base, attempt)).await;
        }
        let (url, secret) = {
            let st = sandbox.lock();
            (st.webhook_url.clone(), st.webhook_secret.clone())
        };
        let Some(url) = url else {
            sandbox.update(job.index, |d| d.status = DeliveryStatus::Abandoned);
            return;
        };
        let result = attempt_once(&sandbox, &url, secret.as_deref(), &job, attempt).await;
        let delivered = matches!(result, Ok(200));
        sandbox.update(job.index, |d| {
            d.attempts = attempt + 1;
            match &result {
                Ok(status) => {
                    d.last_http_status = Some(*status);
                    d.last_error = None;
                }
                Err(e) => d.last_error = Some(e.clone()),
            }
            d.status = if delivered {
                DeliveryStatus::Delivered
            } else if attempt == MAX_RETRIES {
                DeliveryStatus::Failed
            } else {
                DeliveryStatus::Retrying
            };
        });
        {
            let mut st = sandbox.lock();
            if delivered {
                st.stats.webhooks_delivered += 1;
            } else {
                st.stats.webhooks_failed += 1;
            }
        }
        if delivered {
            return;
        }
        tracing::debug!(
            transmission_id = %job.transmission_id,
            attempt,
            "sandbox webhook attempt failed"
        );
    }
}

async fn attempt_once(
    sandbox: &Sandbox,
    url: &str,
    secret: Option<&str>,
    job: &Job,
    attempt: u32,
) -> Result<u16, String> {
    let http = sandbox
        .inner
        .http
        .as_ref()
        .ok_or_else(|| "http client unavailable".to_owned())?;
    let sent_at = OffsetDateTime::now_utc();
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("tosspayments-webhook-transmission-id", &job.transmission_id)
        .header("tosspayments-webhook-transmission-time", iso_kst(sent_at))
        .header(
            "tosspayments-webhook-transmission-retried-count",
            attempt.to_string(),
        );
    if let Some(secret) = secret {
        let ts = sent_at.unix_timestamp();
        if let Some(sig) = signature(secret, ts, &job.body) {
            req = req
                .header("X-Timestamp", ts.to_string())
                .header("X-Signature", sig);
        }
    }
    let resp = req
        .body(job.body.clone())
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    Ok(resp.status().as_u16())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn toss_schedule_ratios() {
        let base = Duration::from_secs(60);
        let minutes: Vec<u64> = (1..=MAX_RETRIES)
            .map(|r| backoff(base, r).as_secs() / 60)
            .collect();
        assert_eq!(minutes, [1, 4, 16, 64, 256, 1024, 4096]);
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Expected value from Python's hmac module, not from this code.
        let sig = signature("secret", 1_700_000_000, b"{}").unwrap();
        assert_eq!(
            sig,
            "v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
