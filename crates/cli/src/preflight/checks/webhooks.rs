//! §3 webhook signatures and idempotency keys: a signed delivery accepted, tampered 401, stale
//! 401, replayed 409, and an `Idempotency-Key` reused with another body 422. §9's bad-signature
//! scenario sends its delivery through [`Delivery`] too.

use super::{rid, unknown_order_confirm};
use crate::preflight::http::{Probe, Resp};
use crate::preflight::report::{Outcome, Report};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// §3: signed accepted, tampered 401, stale 401, replay 409, Idempotency-Key reuse 422.
pub async fn run(p: &Probe, r: &mut Report) -> Result<(), String> {
    let now = now();
    let delivery = Delivery::signed_at(p, now);
    let signed = delivery.send(p).await?;
    r.set("hmac.algorithm", algorithm(p, &delivery, &signed).await?);
    r.set("hmac.timestamp", timestamp(p, now).await?);
    r.set("hmac.reuse", reuse(p, &delivery, &signed).await?);
    r.set("hmac.idempotency_store", idempotency_store(p).await?);
    Ok(())
}

/// The accepted delivery with one body byte changed, under the same signature, is refused.
async fn algorithm(p: &Probe, delivery: &Delivery, signed: &Resp) -> Result<Outcome, String> {
    let tampered = delivery.with_body_changed().send(p).await?;
    Ok(Outcome::check(
        signed.status == 200 && tampered.is(401, "E_WEBHOOK_INVALID_SIG"),
        format!(
            "delivery signed HMAC-SHA256(WEBHOOK_SECRET, \"<ts>.<body>\") → {}{}; same signature, one body byte changed → {}",
            signed.brief(),
            if signed.status == 401 {
                " (the preflight's WEBHOOK_SECRET does not verify on the target)"
            } else {
                ""
            },
            tampered.brief()
        ),
    ))
}

async fn timestamp(p: &Probe, now: i64) -> Result<Outcome, String> {
    let stale = Delivery::signed_at(p, now - 600).send(p).await?;
    Ok(Outcome::check(
        stale.is(401, "E_WEBHOOK_INVALID_SIG"),
        format!(
            "correctly signed, X-Timestamp 600 s old → {}",
            stale.brief()
        ),
    ))
}

async fn reuse(p: &Probe, delivery: &Delivery, signed: &Resp) -> Result<Outcome, String> {
    let replay = delivery.send(p).await?;
    Ok(Outcome::check(
        signed.status == 200 && replay.is(409, "E_WEBHOOK_REPLAYED"),
        format!(
            "the accepted delivery sent again → {} (first: {})",
            replay.brief(),
            signed.brief()
        ),
    ))
}

/// Idempotency-Key reuse with confirms for an order that does not exist: nothing to charge.
async fn idempotency_store(p: &Probe) -> Result<Outcome, String> {
    let (_, token) = p.new_user();
    let key = format!("preflight-{}", rid());
    let first = unknown_order_confirm();
    let mut second = first.clone();
    second["amount"] = json!(2000);
    let a = confirm_with_key(p, &token, &key, &first).await?;
    let b = confirm_with_key(p, &token, &key, &second).await?;
    Ok(Outcome::check(
        b.is(422, "E_IDEMPOTENCY_KEY_REUSED"),
        format!(
            "confirm of a non-existent order with Idempotency-Key → {}; same key, different amount → {}",
            a.brief(),
            b.brief()
        ),
    ))
}

async fn confirm_with_key(p: &Probe, token: &str, key: &str, body: &Value) -> Result<Resp, String> {
    p.send(
        Method::POST,
        "/v1/payments/confirm",
        Some(token),
        Some(body.to_string().into_bytes()),
        &[("idempotency-key", key)],
    )
    .await
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A webhook delivery: an event the service accepts and ignores, with its signature headers.
pub(super) struct Delivery {
    body: Vec<u8>,
    timestamp: String,
    signature: String,
}

impl Delivery {
    /// A fresh event signed with the preflight's WEBHOOK_SECRET as of `at` (Unix seconds).
    fn signed_at(p: &Probe, at: i64) -> Self {
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        // An event type the service does not handle: accepted and ignored, nothing changes.
        let body = json!({"eventType": "COURSEPAY_PREFLIGHT", "createdAt": created, "data": {"preflightId": rid()}})
            .to_string()
            .into_bytes();
        let (timestamp, signature) = flows::webhook_auth::signature::sign_x_signature(
            p.webhook_secret.expose_secret().as_bytes(),
            at,
            &body,
        );
        Self {
            body,
            timestamp,
            signature,
        }
    }

    /// A fresh event signed now.
    pub(super) fn signed_now(p: &Probe) -> Self {
        Self::signed_at(p, now())
    }

    /// The same signature over the body with its last hex digit changed.
    fn with_body_changed(&self) -> Self {
        let mut body = self.body.clone();
        change_last_hex_digit(&mut body);
        Self {
            body,
            timestamp: self.timestamp.clone(),
            signature: self.signature.clone(),
        }
    }

    /// The same body under its signature with the last hex digit changed.
    pub(super) fn with_signature_tampered(self) -> Self {
        let mut signature = self.signature.into_bytes();
        change_last_hex_digit(&mut signature);
        Self {
            signature: String::from_utf8_lossy(&signature).into_owned(),
            ..self
        }
    }

    pub(super) async fn send(&self, p: &Probe) -> Result<Resp, String> {
        p.send(
            Method::POST,
            "/v1/webhooks/toss",
            None,
            Some(self.body.clone()),
            &[
                ("x-timestamp", &self.timestamp),
                ("x-signature", &self.signature),
            ],
        )
        .await
    }
}

/// Change the last ASCII hex digit (`0` becomes `1`, any other `0`): one byte off.
fn change_last_hex_digit(bytes: &mut [u8]) {
    if let Some(b) = bytes.iter_mut().rev().find(|b| b.is_ascii_hexdigit()) {
        *b = if *b == b'0' { b'1' } else { b'0' };
    }
}

#[cfg(test)]
mod tests {
    use super::change_last_hex_digit;

    #[test]
    fn changes_exactly_the_last_hex_digit() {
        for (before, after) in [
            ("v1=ab0", "v1=ab1"),
            ("v1=ab7", "v1=ab0"),
            ("{\"id\":\"f\"}", "{\"id\":\"0\"}"),
        ] {
            let mut bytes = before.as_bytes().to_vec();
            change_last_hex_digit(&mut bytes);
            assert_eq!(bytes, after.as_bytes(), "{before}");
        }
    }
}
