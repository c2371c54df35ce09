//! §6 failure handling and §7 rollback: the circuit breaker's threshold and state, the pause
//! switch round trip (sandbox-mode targets only), and the rows §7 derives from them.

use super::{Target, unknown_order_confirm, yes};
use crate::preflight::http::{Probe, Resp};
use crate::preflight::report::{Outcome, Report};
use serde_json::{Value, json};

/// §6 breaker and pause switch; §7 reuses the pause outcome.
pub async fn run(p: &Probe, r: &mut Report, t: &Target) -> Result<(), String> {
    let status = p.get("/v1/admin/status", Some(p.admin())).await?;
    r.set("fail.toss_outage", breaker(&status, t));
    r.set(
        "fail.db_lock",
        Outcome::na("observed through latency: slow statements are logged with their name (SLOW_QUERY_MS); not checkable from outside"),
    );
    let pause = pause_switch(p, &status, t).await?;
    r.set("fail.amount_mismatch", pause.clone());
    let mut rollback = pause;
    rollback.evidence = format!("the pause switch (§6): {}", rollback.evidence);
    r.set("rollback.amount_mismatch", rollback);
    r.set(
        "rollback.performance",
        Outcome::na(match t.p95_ms {
            Some(p95) => {
                format!("an operator decision; p95 of this run {p95:.0} ms (threshold 3 s)")
            }
            None => "an operator decision (threshold: p95 > 3 s)".to_owned(),
        }),
    );
    Ok(())
}

/// The breaker opens after 5 consecutive provider failures, and is not open now.
fn breaker(status: &Resp, t: &Target) -> Outcome {
    let threshold = t
        .config
        .as_ref()
        .map(|c| c["circuitBreaker"]["failureThreshold"].clone())
        .unwrap_or(Value::Null);
    let state = status.body["circuit"]["state"].as_str().unwrap_or("?");
    Outcome::check(
        threshold == 5 && status.status == 200 && state != "open",
        format!(
            "circuit opens after {threshold} consecutive provider failures (confirms then get 503 E_PG_UNAVAILABLE, retryable); now {state}, {} consecutive failures",
            status.body["circuit"]["consecutiveFailures"]
        ),
    )
}

/// The pause round trip, where it is safe to try: not while paused, not on a real provider.
async fn pause_switch(p: &Probe, status: &Resp, t: &Target) -> Result<Outcome, String> {
    if yes(&status.body["paymentsPaused"]) {
        Ok(Outcome::warn(
            "payments are paused right now: the round trip was not tried",
        ))
    } else if !t.sandbox {
        Ok(Outcome::na(
            "the pause round trip runs only against sandbox-mode targets (it would stop real payments)",
        ))
    } else {
        pause_round_trip(p).await
    }
}

async fn pause_round_trip(p: &Probe) -> Result<Outcome, String> {
    let paused = p
        .post(
            "/v1/admin/payments/pause",
            Some(p.admin()),
            &json!({"reason": "coursepay preflight: pause round trip"}),
        )
        .await?;
    let (_, token) = p.new_user();
    let refused = p
        .post(
            "/v1/payments/confirm",
            Some(&token),
            &unknown_order_confirm(),
        )
        .await;
    // Resume whatever happened in between.
    let resumed = p
        .post("/v1/admin/payments/resume", Some(p.admin()), &json!({}))
        .await?;
    let refused = refused?;
    let after = p.get("/v1/admin/status", Some(p.admin())).await?;
    Ok(Outcome::check(
        paused.status == 200
            && paused.body["paymentsPaused"] == true
            && refused.code() == "E_PAYMENTS_PAUSED"
            && resumed.status == 200
            && after.body["paymentsPaused"] == false,
        format!(
            "pause → {} (paymentsPaused={}); a confirm meanwhile → {}; resume → {}; status paymentsPaused={}",
            paused.brief(),
            paused.body["paymentsPaused"],
            refused.brief(),
            resumed.brief(),
            after.body["paymentsPaused"]
        ),
    ))
}
