//! §9 the five QA scenarios end to end: only with `--qa`, only against a sandbox-mode target
//! (they make payments).

use super::webhooks::Delivery;
use super::{Paid, Target, checkout_and_pay, confirm, course};
use crate::preflight::http::{Probe, SANDBOX_PREFIX};
use crate::preflight::report::{Outcome, Report};
use serde_json::Value;

/// The price of the course the scenarios buy; the tampered confirm asks for 1,000 less.
const PRICE: i64 = 10_000;
const DISCOUNT: i64 = 1_000;

/// §9: the five QA scenarios end to end (only with `--qa`, only against a sandbox target).
pub async fn run(p: &Probe, r: &mut Report, t: &Target, enabled: bool) -> Result<(), String> {
    let ids = [
        "qa.normal",
        "qa.tamper",
        "qa.duplicate",
        "qa.network",
        "qa.bad_signature",
    ];
    if !enabled {
        r.set_all(
            &ids,
            &Outcome::na("run with --qa against a sandbox-mode target"),
        );
        return Ok(());
    }
    if !t.sandbox {
        r.set_all(
            &ids,
            &Outcome::unverified(
                "--qa needs a sandbox-mode target (these scenarios make payments)",
            ),
        );
        return Ok(());
    }
    let course_id = course(p, Some(PRICE)).await?;
    let (normal, enrolled) = normal(p, &course_id).await?;
    r.set("qa.normal", normal);
    r.set("qa.tamper", tamper(p, &course_id).await?);
    r.set("qa.duplicate", duplicate(p, &enrolled, &course_id).await?);
    r.set("qa.network", network(p, &course_id).await?);
    r.set("qa.bad_signature", bad_signature(p).await?);
    Ok(())
}

/// The buyer of the normal payment, for the duplicate confirm.
struct Enrolled {
    buyer: Paid,
    enrollment_id: String,
}

/// 1. Normal payment: checkout, sandbox approval, confirm → enrolled, order paid.
async fn normal(p: &Probe, course_id: &str) -> Result<(Outcome, Enrolled), String> {
    let buyer = checkout_and_pay(p, course_id).await?;
    let first = confirm(p, &buyer, buyer.amount).await?;
    let enrollment_id = first.body["enrollmentId"].as_str().unwrap_or("").to_owned();
    let enrollment = p
        .get(
            &format!("/v1/enrollments/{enrollment_id}"),
            Some(&buyer.token),
        )
        .await?;
    let order = p
        .get(
            &format!("/v1/orders/{}", buyer.order_id),
            Some(&buyer.token),
        )
        .await?;
    let outcome = Outcome::check(
        first.status == 200
            && first.body["status"] == "ENROLLED"
            && enrollment.body["status"] == "ENROLLED"
            && order.body["status"] == "PAID",
        format!(
            "checkout {} KRW, sandbox approval, confirm → {} {}; enrollment → {}; order → {}",
            buyer.amount,
            first.brief(),
            first.body["status"],
            enrollment.body["status"],
            order.body["status"]
        ),
    );
    Ok((
        outcome,
        Enrolled {
            buyer,
            enrollment_id,
        },
    ))
}

/// 2. Amount tampering: refused before the provider is called.
async fn tamper(p: &Probe, course_id: &str) -> Result<Outcome, String> {
    let tamperer = checkout_and_pay(p, course_id).await?;
    let asked = tamperer.amount - DISCOUNT;
    let before = sandbox_confirm_calls(p).await?;
    let tampered = confirm(p, &tamperer, asked).await?;
    let after = sandbox_confirm_calls(p).await?;
    Ok(Outcome::check(
        tampered.is(400, "E_AMOUNT_MISMATCH") && before == after,
        format!(
            "confirm with {asked} instead of {} → {}; Toss confirm calls {before} → {after} (provider not called)",
            tamperer.amount,
            tampered.brief()
        ),
    ))
}

/// How many confirms the sandbox provider has answered.
async fn sandbox_confirm_calls(p: &Probe) -> Result<i64, String> {
    p.get(&format!("{SANDBOX_PREFIX}/sandbox/stats"), None)
        .await
        .map(|s| s.body["confirmCalls"].as_i64().unwrap_or(-1))
}

/// 3. Duplicate confirm: the same enrollment again, still one in the course.
async fn duplicate(p: &Probe, enrolled: &Enrolled, course_id: &str) -> Result<Outcome, String> {
    let buyer = &enrolled.buyer;
    let again = confirm(p, buyer, buyer.amount).await?;
    let mine = p.get("/v1/me/enrollments", Some(&buyer.token)).await?;
    let count = enrollments_in(&mine.body, course_id).count();
    let same = again.body["enrollmentId"] == enrolled.enrollment_id.as_str();
    Ok(Outcome::check(
        again.status == 200 && same && count == 1,
        format!(
            "same payload again → {}, same enrollmentId={same}, replayed={}; the buyer has {count} enrollment(s) in the course",
            again.brief(),
            again.body["replayed"]
        ),
    ))
}

/// 4. Network interruption: approved, never confirmed, the buyer comes back to a paid order.
async fn network(p: &Probe, course_id: &str) -> Result<Outcome, String> {
    let gone = checkout_and_pay(p, course_id).await?;
    let back = p
        .get(&format!("/v1/orders/{}", gone.order_id), Some(&gone.token))
        .await?;
    let theirs = p.get("/v1/me/enrollments", Some(&gone.token)).await?;
    let enrolled = enrollments_in(&theirs.body, course_id).any(|e| e["status"] == "ENROLLED");
    Ok(Outcome::check(
        back.status == 200 && back.body["status"] == "PAID" && enrolled,
        format!(
            "approved without a confirm; GET /v1/orders/{{orderId}} → {} {} enrollmentId={}; enrolled={enrolled}",
            back.brief(),
            back.body["status"],
            back.body["enrollmentId"]
        ),
    ))
}

/// 5. Bad signature: a delivery whose X-Signature has one hex digit changed is refused.
async fn bad_signature(p: &Probe) -> Result<Outcome, String> {
    let bad = Delivery::signed_now(p)
        .with_signature_tampered()
        .send(p)
        .await?;
    Ok(Outcome::check(
        bad.is(401, "E_WEBHOOK_INVALID_SIG"),
        format!("X-Signature with one hex digit changed → {}", bad.brief()),
    ))
}

/// The enrollments in `course_id` of a `GET /v1/me/enrollments` answer.
fn enrollments_in<'a>(mine: &'a Value, course_id: &'a str) -> impl Iterator<Item = &'a Value> {
    mine["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |e| e["courseId"] == course_id)
}
