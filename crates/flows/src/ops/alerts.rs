//! The seed's three alert rules (§4), evaluated in process over the confirms this instance
//! answered. `deploy/prometheus/alerts.yml` holds the same rules in PromQL for a fleet; this
//! evaluator exists so a single instance without Prometheus still notices, logs and reports
//! (`GET /v1/admin/status`, `ALERT_WEBHOOK_URL`) them.
//!
//! The rules, with the choices the seed leaves open:
//! - `amount_mismatch_rate`: `E_AMOUNT_MISMATCH` answers per 1,000 confirms over a sliding
//!   hour; fires at ≥ 1 with at least [`MISMATCH_MIN_CONFIRMS`] confirms in the hour.
//! - `approval_failure_rate`: over a 5-minute moving window, approval failures / approval
//!   attempts > 2 % with at least [`APPROVAL_MIN_ATTEMPTS`] attempts. An approval failure is a
//!   confirm that went to the provider and did not end enrolled: declined, provider unavailable
//!   or timed out, or an internal error ([`classify`]). Attempts are those plus fresh
//!   enrollments — a buyer's own or a server-side confirm (settle-on-read, the reconciler) that
//!   called Toss. Client errors (amount mismatch, validation, auth, expired order, already
//!   enrolled) and replays are not attempts: a buyer tampering with an amount is not the
//!   provider failing.
//! - `confirm_latency_p95`: p95 of the buyer's confirm latency per minute; fires when each of
//!   the last 15 complete minutes had at least [`LATENCY_MIN_PER_MINUTE`] confirms and a p95
//!   above 1,500 ms (a quiet minute interrupts "sustained"). Value: the lowest of those 15
//!   p95s.
//!
//! "Confirms" everywhere exclude requests refused before the confirm flow ran (auth,
//! validation, rate limit: [`ConfirmClass::Rejected`]). The evaluator takes `now` as an
//! argument so tests drive time; the server feeds it through
//! [`crate::ops::metrics::record_confirm`] (the same call that counts the metric) and
//! evaluates it on a ticker ([`spawn_ticker`]).

use crate::ops::metrics::ConfirmOutcome;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

pub const AMOUNT_MISMATCH: &str = "amount_mismatch_rate";
pub const APPROVAL_FAILURE: &str = "approval_failure_rate";
pub const CONFIRM_LATENCY: &str = "confirm_latency_p95";
pub const RULES: &[&str] = &[AMOUNT_MISMATCH, APPROVAL_FAILURE, CONFIRM_LATENCY];

pub const MISMATCH_WINDOW: Duration = Duration::from_secs(3600);
/// Mismatches per 1,000 confirms at which the rule fires.
pub const MISMATCH_PER_1000: f64 = 1.0;
pub const MISMATCH_MIN_CONFIRMS: usize = 100;

pub const APPROVAL_WINDOW: Duration = Duration::from_secs(300);
/// Failure ratio above which the rule fires.
pub const APPROVAL_MAX_FAILURE: f64 = 0.02;
pub const APPROVAL_MIN_ATTEMPTS: usize = 20;

pub const LATENCY_P95_MS: f64 = 1500.0;
pub const LATENCY_SUSTAIN_MINUTES: i64 = 15;
pub const LATENCY_MIN_PER_MINUTE: usize = 3;

/// Samples kept at most (the oldest are dropped first): bounds memory under any load.
const MAX_SAMPLES: usize = 500_000;

/// What a confirm's outcome counts as: the `class` label of `coursepay_confirm_total`, which
/// `deploy/prometheus/alerts.yml` selects on, so the rules there never spell error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmClass {
    /// An approval attempt that ended enrolled.
    Enrolled,
    /// An approval attempt the provider declined (the buyer's card, balance, limits).
    Declined,
    /// An approval attempt that failed on the provider's side or ours (unavailable, timed out,
    /// an internal error): the outage signal.
    ProviderFailure,
    /// No charge by this confirm: a repeat of one that already ended.
    Replayed,
    AmountMismatch,
    /// A confirm that ran but is none of these (expired order, already enrolled, in progress,
    /// paused, ...).
    Other,
    /// Refused before the confirm flow ran: not a confirm for any rule.
    Rejected,
}

impl ConfirmClass {
    /// Every class (the `class` label values).
    pub const ALL: [ConfirmClass; 7] = [
        ConfirmClass::Enrolled,
        ConfirmClass::Declined,
        ConfirmClass::ProviderFailure,
        ConfirmClass::Replayed,
        ConfirmClass::AmountMismatch,
        ConfirmClass::Other,
        ConfirmClass::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmClass::Enrolled => "enrolled",
            ConfirmClass::Declined => "declined",
            ConfirmClass::ProviderFailure => "provider_failure",
            ConfirmClass::Replayed => "replayed",
            ConfirmClass::AmountMismatch => "amount_mismatch",
            ConfirmClass::Other => "other",
            ConfirmClass::Rejected => "rejected",
        }
    }

    /// Counted by the rules as a confirm at all (the amount-mismatch rule's denominator).
    pub fn is_confirm(self) -> bool {
        self != ConfirmClass::Rejected
    }

    /// A confirm that went to the provider and did not end enrolled.
    pub fn is_approval_failure(self) -> bool {
        matches!(self, ConfirmClass::Declined | ConfirmClass::ProviderFailure)
    }

    /// The approval rule's denominator: fresh enrollments plus approval failures.
    pub fn is_approval_attempt(self) -> bool {
        self == ConfirmClass::Enrolled || self.is_approval_failure()
    }
}

/// Classify a confirm outcome. Exhaustive over the error catalog: a new code does not compile
/// until someone decides what it means for the alerts.
pub fn classify(outcome: ConfirmOutcome) -> ConfirmClass {
    use domain::ErrorCode as E;
    let code = match outcome {
        ConfirmOutcome::Enrolled => return ConfirmClass::Enrolled,
        ConfirmOutcome::Replayed | ConfirmOutcome::Repeated(_) => return ConfirmClass::Replayed,
        // The flow never ran (a client leaving mid-flow is counted with the flow's outcome).
        ConfirmOutcome::ClientClosed => return ConfirmClass::Rejected,
        ConfirmOutcome::Error(code) => code,
    };
    match code {
        E::AmountMismatch => ConfirmClass::AmountMismatch,
        E::PaymentRejected => ConfirmClass::Declined,
        E::PgUnavailable | E::PgTimeout | E::Internal => ConfirmClass::ProviderFailure,
        E::Unauthorized
        | E::Forbidden
        | E::InvalidRequest
        | E::PayloadTooLarge
        | E::RateLimited
        | E::MethodNotAllowed
        | E::IdempotencyKeyReused => ConfirmClass::Rejected,
        E::NotFound
        | E::CourseNotFound
        | E::OrderNotFound
        | E::OrderExpired
        | E::AlreadyEnrolled
        | E::ConfirmInProgress
        | E::PaymentsPaused
        | E::PaymentNotFound
        | E::RefundNotAllowed
        | E::EnrollmentNotFound
        | E::NotEnrolled
        | E::AttemptNotFound
        | E::AttemptAlreadySubmitted
        | E::AttemptLimitReached
        | E::TooManyOpenOrders
        | E::WebhookInvalidSig
        | E::WebhookReplayed
        | E::ServiceUnavailable
        | E::RequestTimeout
        | E::OrderNotCancelable => ConfirmClass::Other,
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: i64,
    class: ConfirmClass,
    /// None for a server-side confirm: no buyer waited for it.
    latency_ms: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct RuleState {
    firing: bool,
    since: Option<OffsetDateTime>,
    value: f64,
    /// The volume the gate counts (see [`Reading::samples`]).
    samples: usize,
    /// Whether the minimum volume was met at the last evaluation.
    enough: bool,
}

/// What the status report says when a rule's minimum volume is not met: its value is then
/// not evidence of anything, whatever it is ("ok" would claim health nobody measured).
pub const NOT_ENOUGH_DATA: &str = "not enough data";

/// One rule's state, as `GET /v1/admin/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertState {
    pub rule: &'static str,
    /// "firing", "ok", or [`NOT_ENOUGH_DATA`] when `samples` < `min_samples`.
    pub state: &'static str,
    pub value: f64,
    pub threshold: f64,
    /// The volume the rule needs before it can fire (the gate).
    pub min_samples: usize,
    /// The volume it has now: confirms in the hour, approval attempts in 5 minutes, or, for
    /// latency, the fewest confirms in one of the last 15 complete minutes.
    pub samples: usize,
    /// What `samples` counts, in words.
    pub gate: &'static str,
    /// When the rule last changed state (RFC 3339), null if it never did.
    pub since: Option<String>,
}

/// The gate of each rule: (minimum volume, what is counted).
pub fn gate(rule: &str) -> (usize, &'static str) {
    match rule {
        AMOUNT_MISMATCH => (MISMATCH_MIN_CONFIRMS, "confirms in the last hour"),
        APPROVAL_FAILURE => (
            APPROVAL_MIN_ATTEMPTS,
            "approval attempts in the last 5 minutes",
        ),
        _ => (
            LATENCY_MIN_PER_MINUTE,
            "confirms in each of the last 15 complete minutes (the fewest is shown)",
        ),
    }
}

/// One evaluation of one rule.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    firing: bool,
    value: f64,
    samples: usize,
    enough: bool,
}

/// A rule changing state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub rule: &'static str,
    pub firing: bool,
    pub value: f64,
    pub threshold: f64,
    pub at: OffsetDateTime,
}

impl Transition {
    pub fn event(&self) -> &'static str {
        if self.firing {
            "alert.firing"
        } else {
            "alert.resolved"
        }
    }
    /// Slack-compatible message text.
    pub fn text(&self) -> String {
        format!(
            "[{}] coursepay {}: value {} (threshold {})",
            if self.firing { "FIRING" } else { "RESOLVED" },
            self.rule,
            round(self.value),
            self.threshold
        )
    }
}

fn round(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

pub fn threshold(rule: &str) -> f64 {
    match rule {
        AMOUNT_MISMATCH => MISMATCH_PER_1000,
        APPROVAL_FAILURE => APPROVAL_MAX_FAILURE,
        _ => LATENCY_P95_MS,
    }
}

#[derive(Debug, Default)]
pub struct Evaluator {
    samples: VecDeque<Sample>,
    states: [RuleState; 3],
    /// `ALERT_TIME_SCALE` (0 counts as 1): every window and the latency rule's minute are
    /// divided by it. Counts and thresholds are not scaled.
    time_scale: u32,
}

/// The time scales allowed: divisors of 60, so every window stays a whole number of seconds.
pub fn valid_time_scale(k: u32) -> bool {
    k > 0 && 60 % k == 0
}

impl Evaluator {
    pub fn new() -> Self {
        Self::default()
    }

    /// An evaluator whose windows are `k` times shorter (a test or a demo, never production).
    pub fn with_time_scale(k: u32) -> Self {
        Evaluator {
            time_scale: k,
            ..Self::default()
        }
    }

    fn scaled(&self, len: Duration) -> i64 {
        (len.as_secs() / u64::from(self.time_scale.max(1))) as i64
    }

    /// Record one confirm (`latency`: the buyer's request time; None for a server-side one).
    pub fn record(
        &mut self,
        now: OffsetDateTime,
        outcome: ConfirmOutcome,
        latency: Option<Duration>,
    ) {
        let class = classify(outcome);
        if class == ConfirmClass::Rejected {
            return;
        }
        if self.samples.len() >= MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at: now.unix_timestamp(),
            class,
            latency_ms: latency.map(|l| l.as_secs_f64() * 1000.0),
        });
    }

    fn prune(&mut self, now: i64) {
        let keep_from = now - self.scaled(MISMATCH_WINDOW);
        while self.samples.front().is_some_and(|s| s.at <= keep_from) {
            self.samples.pop_front();
        }
    }

    fn window(&self, now: i64, len: Duration) -> impl Iterator<Item = &Sample> {
        let from = now - self.scaled(len);
        self.samples
            .iter()
            .filter(move |s| s.at > from && s.at <= now)
    }

    /// Each rule at `now`, in [`RULES`] order.
    fn compute(&self, now: i64) -> [Reading; 3] {
        let (mut confirms, mut mismatches) = (0usize, 0usize);
        for s in self.window(now, MISMATCH_WINDOW) {
            confirms += 1;
            if s.class == ConfirmClass::AmountMismatch {
                mismatches += 1;
            }
        }
        let per_1000 = if confirms == 0 {
            0.0
        } else {
            mismatches as f64 * 1000.0 / confirms as f64
        };
        let mismatch = Reading {
            firing: confirms >= MISMATCH_MIN_CONFIRMS && per_1000 >= MISMATCH_PER_1000,
            value: per_1000,
            samples: confirms,
            enough: confirms >= MISMATCH_MIN_CONFIRMS,
        };

        let (mut attempts, mut failures) = (0usize, 0usize);
        for s in self.window(now, APPROVAL_WINDOW) {
            attempts += usize::from(s.class.is_approval_attempt());
            failures += usize::from(s.class.is_approval_failure());
        }
        let ratio = if attempts == 0 {
            0.0
        } else {
            failures as f64 / attempts as f64
        };
        let approval = Reading {
            firing: attempts >= APPROVAL_MIN_ATTEMPTS && ratio > APPROVAL_MAX_FAILURE,
            value: ratio,
            samples: attempts,
            enough: attempts >= APPROVAL_MIN_ATTEMPTS,
        };

        // Complete minutes only: the current one is still filling. Value: the lowest p95 of
        // the minutes that had any confirm (0 when none had).
        let minute = self.scaled(Duration::from_secs(60));
        let this_minute = now.div_euclid(minute);
        let mut sustained = true;
        let mut lowest_p95 = f64::INFINITY;
        let mut fewest = usize::MAX;
        for m in (this_minute - LATENCY_SUSTAIN_MINUTES)..this_minute {
            let mut lat: Vec<f64> = self
                .samples
                .iter()
                .filter(|s| s.at.div_euclid(minute) == m)
                .filter_map(|s| s.latency_ms)
                .collect();
            fewest = fewest.min(lat.len());
            if lat.len() < LATENCY_MIN_PER_MINUTE {
                sustained = false;
            }
            if lat.is_empty() {
                continue;
            }
            let p95 = p95(&mut lat);
            lowest_p95 = lowest_p95.min(p95);
            if p95 <= LATENCY_P95_MS {
                sustained = false;
            }
        }
        let latency = Reading {
            firing: sustained,
            value: if lowest_p95.is_finite() {
                lowest_p95
            } else {
                0.0
            },
            samples: fewest,
            enough: fewest >= LATENCY_MIN_PER_MINUTE,
        };
        [mismatch, approval, latency]
    }

    /// Evaluate every rule at `now`; returns the rules that changed state.
    pub fn evaluate(&mut self, now: OffsetDateTime) -> Vec<Transition> {
        let t = now.unix_timestamp();
        self.prune(t);
        let results = self.compute(t);
        let mut changes = Vec::new();
        for (i, reading) in results.into_iter().enumerate() {
            let Reading {
                firing,
                value,
                samples,
                enough,
            } = reading;
            let st = &mut self.states[i];
            st.value = value;
            st.samples = samples;
            st.enough = enough;
            if st.firing != firing {
                st.firing = firing;
                st.since = Some(now);
                changes.push(Transition {
                    rule: RULES[i],
                    firing,
                    value,
                    threshold: threshold(RULES[i]),
                    at: now,
                });
            }
        }
        changes
    }

    pub fn snapshot(&self) -> Vec<AlertState> {
        RULES
            .iter()
            .zip(self.states.iter())
            .map(|(rule, st)| AlertState {
                rule,
                state: if st.firing {
                    "firing"
                } else if !st.enough {
                    NOT_ENOUGH_DATA
                } else {
                    "ok"
                },
                value: round(st.value),
                threshold: threshold(rule),
                min_samples: gate(rule).0,
                samples: st.samples,
                gate: gate(rule).1,
                since: st.since.and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                }),
            })
            .collect()
    }
}

/// Nearest-rank 95th percentile (sorts `v`).
fn p95(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((v.len() as f64) * 0.95).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Posts transitions to a Slack-compatible incoming webhook (`{"text": "..."}`).
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    url: String,
}

impl Notifier {
    pub fn new(url: &str) -> Option<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| tracing::error!(error = %e, "alert webhook client unavailable"))
            .ok()?;
        Some(Notifier {
            http,
            url: url.to_owned(),
        })
    }

    /// Post one transition. The URL is a credential (Slack's carries a token): never logged.
    pub async fn send(&self, t: &Transition) -> Result<(), String> {
        let body = serde_json::json!({
            "text": t.text(),
            "rule": t.rule,
            "state": if t.firing { "firing" } else { "ok" },
            "value": round(t.value),
            "threshold": t.threshold,
        });
        let resp = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("alert webhook: {}", e.without_url()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("alert webhook answered {}", resp.status()))
        }
    }

    /// Fire and forget: a slow or failing receiver never delays evaluation.
    pub fn notify(&self, t: Transition) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.send(&t).await {
                tracing::warn!(target: "coursepay::alerts", rule = t.rule, error = %e, "alert notification failed");
            }
        })
    }
}

/// Log a transition as a JSON event and mirror it in the `coursepay_alert_firing` gauge.
pub fn publish(t: &Transition) {
    crate::ops::metrics::set_alert_firing(t.rule, t.firing);
    if t.firing {
        tracing::warn!(target: "coursepay::alerts", event = "alert.firing", rule = t.rule, value = round(t.value), threshold = t.threshold, "alert.firing");
    } else {
        tracing::info!(target: "coursepay::alerts", event = "alert.resolved", rule = t.rule, value = round(t.value), threshold = t.threshold, "alert.resolved");
    }
}

fn global() -> &'static Mutex<Evaluator> {
    static GLOBAL: OnceLock<Mutex<Evaluator>> = OnceLock::new();
    GLOBAL.get_or_init(|| Mutex::new(Evaluator::new()))
}

/// Scale the process's evaluator's windows (`ALERT_TIME_SCALE`; set once by `coursepay serve`).
pub fn set_time_scale(k: u32) {
    if let Ok(mut ev) = global().lock() {
        ev.time_scale = k;
    }
}

/// Feed the process's evaluator with one confirm (only through
/// [`crate::ops::metrics::record_confirm`], which counts it in the metric too).
pub(crate) fn observe_confirm(outcome: ConfirmOutcome, latency: Option<Duration>) {
    if let Ok(mut ev) = global().lock() {
        ev.record(OffsetDateTime::now_utc(), outcome, latency);
    }
}

/// The process's alert states, for `GET /v1/admin/status`.
pub fn alerts_snapshot() -> Vec<AlertState> {
    global().lock().map(|ev| ev.snapshot()).unwrap_or_default()
}

/// Evaluate the process's evaluator at `now`: log, gauge and notify each transition.
pub fn evaluate_global(now: OffsetDateTime, notifier: Option<&Notifier>) -> Vec<Transition> {
    let changes = match global().lock() {
        Ok(mut ev) => ev.evaluate(now),
        Err(_) => Vec::new(),
    };
    for t in &changes {
        publish(t);
        if let Some(n) = notifier {
            n.notify(t.clone());
        }
    }
    changes
}

/// How often `coursepay serve` evaluates the rules.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(15);

/// Evaluate on a ticker until the runtime stops (started by `coursepay serve`).
pub fn spawn_ticker(webhook_url: Option<&str>, every: Duration) -> tokio::task::JoinHandle<()> {
    let notifier = webhook_url.and_then(Notifier::new);
    for rule in RULES {
        crate::ops::metrics::set_alert_firing(rule, false);
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            evaluate_global(OffsetDateTime::now_utc(), notifier.as_ref());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-24 12:00:00 UTC);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The outcome whose label is `s` (the label is what the tests below speak).
    fn outcome(s: &str) -> ConfirmOutcome {
        ConfirmOutcome::all()
            .find(|o| o.as_str() == s && !matches!(o, ConfirmOutcome::Repeated(_)))
            .unwrap()
    }

    fn feed(ev: &mut Evaluator, at: OffsetDateTime, label: &str, n: usize, latency: Duration) {
        for _ in 0..n {
            ev.record(at, outcome(label), Some(latency));
        }
    }

    fn state(ev: &Evaluator, rule: &str) -> AlertState {
        ev.snapshot().into_iter().find(|s| s.rule == rule).unwrap()
    }

    /// With `ALERT_TIME_SCALE=60` an hour is a minute, five minutes five seconds and the latency
    /// rule's minute one second.
    #[test]
    fn time_scale_shortens_every_window() {
        let mut ev = Evaluator::with_time_scale(60);
        feed(&mut ev, T0, "E_PG_UNAVAILABLE", 25, ms(5));
        ev.evaluate(T0);
        assert_eq!(state(&ev, APPROVAL_FAILURE).state, "firing");
        ev.evaluate(T0 + time::Duration::seconds(4));
        assert_eq!(state(&ev, APPROVAL_FAILURE).state, "firing");
        ev.evaluate(T0 + time::Duration::seconds(5));
        assert_eq!(state(&ev, APPROVAL_FAILURE).state, "not enough data");

        let mut ev = Evaluator::with_time_scale(60);
        feed(&mut ev, T0, "E_AMOUNT_MISMATCH", 100, ms(5));
        ev.evaluate(T0 + time::Duration::seconds(59));
        assert_eq!(state(&ev, AMOUNT_MISMATCH).state, "firing");
        ev.evaluate(T0 + time::Duration::seconds(60));
        assert_eq!(state(&ev, AMOUNT_MISMATCH).state, "not enough data");

        let mut ev = Evaluator::with_time_scale(60);
        for s in 0..16 {
            feed(
                &mut ev,
                T0 + time::Duration::seconds(s),
                "enrolled",
                3,
                ms(1600),
            );
        }
        ev.evaluate(T0 + time::Duration::seconds(14));
        assert_eq!(state(&ev, CONFIRM_LATENCY).state, "not enough data");
        ev.evaluate(T0 + time::Duration::seconds(15));
        assert_eq!(state(&ev, CONFIRM_LATENCY).state, "firing");
        assert!(valid_time_scale(60) && valid_time_scale(1) && !valid_time_scale(7));
    }

    #[test]
    fn classification() {
        let class = |s: &str| classify(outcome(s));
        assert_eq!(class("enrolled"), ConfirmClass::Enrolled);
        assert_eq!(class("E_PG_TIMEOUT"), ConfirmClass::ProviderFailure);
        assert_eq!(class("E_PAYMENT_REJECTED"), ConfirmClass::Declined);
        assert_eq!(class("E_AMOUNT_MISMATCH"), ConfirmClass::AmountMismatch);
        assert_eq!(class("E_UNAUTHORIZED"), ConfirmClass::Rejected);
        assert_eq!(class("E_ORDER_EXPIRED"), ConfirmClass::Other);
        assert_eq!(class("client_closed"), ConfirmClass::Rejected);
        // A repeat of a decline is no approval attempt; a non-approval code is never a repeat.
        let repeat = ConfirmOutcome::repeated(domain::ErrorCode::PaymentRejected);
        assert_eq!(
            repeat,
            ConfirmOutcome::Repeated(domain::ErrorCode::PaymentRejected)
        );
        assert_eq!(classify(repeat), ConfirmClass::Replayed);
        assert!(!classify(repeat).is_approval_attempt());
        assert_eq!(
            ConfirmOutcome::repeated(domain::ErrorCode::AlreadyEnrolled),
            ConfirmOutcome::Error(domain::ErrorCode::AlreadyEnrolled)
        );
        for c in ConfirmClass::ALL {
            assert_eq!(
                c.is_approval_attempt(),
                c == ConfirmClass::Enrolled || c.is_approval_failure()
            );
        }
    }

    /// deploy/prometheus/alerts.yml selects confirms by the `class` label, never by error code,
    /// and each selector picks exactly the classes this module counts.
    #[test]
    fn promql_rules_use_the_same_classification() {
        let rules = include_str!("../../../../deploy/prometheus/alerts.yml");
        // Every selector on coursepay_confirm_total, as (operator, value).
        let mut selectors = std::collections::BTreeSet::new();
        for (i, _) in rules.match_indices("coursepay_confirm_total{") {
            let rest = &rules[i + "coursepay_confirm_total{".len()..];
            let sel = &rest[..rest.find('}').unwrap()];
            let sel = sel.strip_prefix("class").expect("selects on class only");
            let (op, value) = sel.split_at(sel.find('"').unwrap());
            selectors.insert((op.to_owned(), value.trim_matches('"').to_owned()));
        }
        let picks = |op: &str, value: &str| -> Vec<ConfirmClass> {
            let names: Vec<&str> = value.split('|').collect();
            ConfirmClass::ALL
                .into_iter()
                .filter(|c| match op {
                    "=" | "=~" => names.contains(&c.as_str()),
                    "!=" | "!~" => !names.contains(&c.as_str()),
                    other => panic!("operator {other}"),
                })
                .collect()
        };
        let wanted = |f: fn(ConfirmClass) -> bool| -> Vec<ConfirmClass> {
            ConfirmClass::ALL.into_iter().filter(|c| f(*c)).collect()
        };
        let mut found = Vec::new();
        for (op, value) in &selectors {
            found.push(picks(op, value));
        }
        let expected = [
            wanted(ConfirmClass::is_confirm),
            wanted(ConfirmClass::is_approval_failure),
            wanted(ConfirmClass::is_approval_attempt),
            wanted(|c| c == ConfirmClass::AmountMismatch),
        ];
        for e in &expected {
            assert!(found.contains(e), "no selector picks {e:?}: {selectors:?}");
        }
        assert_eq!(found.len(), expected.len(), "{selectors:?}");
        assert!(rules.contains("> 0.02") && rules.contains("for: 15m"));
    }

    #[test]
    fn amount_mismatch_fires_at_one_per_thousand_and_resolves_after_the_hour() {
        let mut ev = Evaluator::new();
        feed(&mut ev, T0, "enrolled", 1999, ms(100));
        feed(&mut ev, T0, "E_AMOUNT_MISMATCH", 1, ms(10));
        // 0.5 per 1,000: below.
        assert!(ev.evaluate(T0 + time::Duration::seconds(1)).is_empty());
        assert_eq!(state(&ev, AMOUNT_MISMATCH).state, "ok");
        assert_eq!(state(&ev, AMOUNT_MISMATCH).value, 0.5);
        feed(&mut ev, T0, "E_AMOUNT_MISMATCH", 1, ms(10));
        // 2 in 2,001: ≈ 1.0 per 1,000, still just below.
        assert!(ev.evaluate(T0 + time::Duration::seconds(1)).is_empty());
        feed(&mut ev, T0, "E_AMOUNT_MISMATCH", 1, ms(10));
        let ch = ev.evaluate(T0 + time::Duration::seconds(2));
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!(ch[0].rule, AMOUNT_MISMATCH);
        assert!(ch[0].firing);
        assert_eq!(ch[0].event(), "alert.firing");
        assert!(ch[0].text().contains("FIRING"));
        let s = state(&ev, AMOUNT_MISMATCH);
        assert_eq!(s.state, "firing");
        assert!(s.since.is_some());
        // Firing is reported once, not on every evaluation.
        assert!(ev.evaluate(T0 + time::Duration::minutes(30)).is_empty());
        // The hour slides past the mismatches.
        let ch = ev.evaluate(T0 + time::Duration::minutes(61));
        assert_eq!(ch.len(), 1);
        assert!(!ch[0].firing);
        assert_eq!(ch[0].event(), "alert.resolved");
        // Resolved, and with no confirm left in the hour there is nothing to judge.
        assert_eq!(state(&ev, AMOUNT_MISMATCH).state, NOT_ENOUGH_DATA);
    }

    #[test]
    fn amount_mismatch_needs_minimum_volume() {
        let mut ev = Evaluator::new();
        feed(&mut ev, T0, "E_AMOUNT_MISMATCH", 1, ms(10));
        feed(&mut ev, T0, "enrolled", MISMATCH_MIN_CONFIRMS - 2, ms(10));
        assert!(ev.evaluate(T0).is_empty());
        // Client errors refused before the flow are not confirms.
        feed(&mut ev, T0, "E_UNAUTHORIZED", 500, ms(1));
        assert!(ev.evaluate(T0).is_empty());
        feed(&mut ev, T0, "enrolled", 1, ms(10));
        assert_eq!(ev.evaluate(T0).len(), 1);
    }

    #[test]
    fn approval_failures_over_two_percent_in_five_minutes() {
        let mut ev = Evaluator::new();
        feed(&mut ev, T0, "enrolled", 98, ms(100));
        feed(&mut ev, T0, "E_PAYMENT_REJECTED", 2, ms(100));
        // Exactly 2 %: not above.
        assert!(ev.evaluate(T0).is_empty());
        // Amount mismatches and validation errors are not approval failures.
        feed(&mut ev, T0, "E_AMOUNT_MISMATCH", 1, ms(1));
        feed(&mut ev, T0, "E_INVALID_REQUEST", 50, ms(1));
        feed(&mut ev, T0, "E_ALREADY_ENROLLED", 50, ms(1));
        feed(&mut ev, T0, "replayed", 50, ms(1));
        assert!(ev.evaluate(T0).iter().all(|t| t.rule != APPROVAL_FAILURE));
        assert_eq!(state(&ev, APPROVAL_FAILURE).value, 0.02);
        feed(&mut ev, T0, "E_PG_TIMEOUT", 1, ms(2000));
        let ch = ev.evaluate(T0 + time::Duration::seconds(10));
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!(ch[0].rule, APPROVAL_FAILURE);
        assert!((ch[0].value - 3.0 / 101.0).abs() < 1e-9);
        // Healthy traffic after the failures leave the 5-minute window resolves it.
        let later = T0 + time::Duration::minutes(6);
        feed(&mut ev, later, "enrolled", 50, ms(100));
        let ch = ev.evaluate(later);
        assert_eq!(ch.len(), 1);
        assert!(!ch[0].firing);
    }

    #[test]
    fn approval_rule_needs_minimum_volume() {
        let mut ev = Evaluator::new();
        feed(&mut ev, T0, "E_PG_UNAVAILABLE", 1, ms(10));
        assert!(ev.evaluate(T0).is_empty());
        feed(
            &mut ev,
            T0,
            "E_PG_UNAVAILABLE",
            APPROVAL_MIN_ATTEMPTS - 2,
            ms(10),
        );
        assert!(ev.evaluate(T0).is_empty());
        feed(&mut ev, T0, "enrolled", 1, ms(10));
        assert_eq!(ev.evaluate(T0).len(), 1);
    }

    #[test]
    fn slow_p95_must_be_sustained_for_fifteen_minutes() {
        let mut ev = Evaluator::new();
        let minute = |m: i64| T0 + time::Duration::minutes(m);
        for m in 0..15 {
            // 19 slow and 1 fast: p95 is slow.
            feed(&mut ev, minute(m), "enrolled", 19, ms(2000));
            feed(&mut ev, minute(m), "enrolled", 1, ms(50));
            if m < 14 {
                assert!(ev.evaluate(minute(m + 1)).is_empty(), "fired after {m} min");
            }
        }
        let ch = ev.evaluate(minute(15));
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!(ch[0].rule, CONFIRM_LATENCY);
        assert_eq!(ch[0].value, 2000.0);
        // One fast minute ends "sustained".
        feed(&mut ev, minute(15), "enrolled", 20, ms(100));
        let ch = ev.evaluate(minute(16));
        assert_eq!(ch.len(), 1);
        assert!(!ch[0].firing);
    }

    #[test]
    fn slow_p95_below_threshold_or_volume_does_not_fire() {
        let mut ev = Evaluator::new();
        let minute = |m: i64| T0 + time::Duration::minutes(m);
        for m in 0..15 {
            feed(&mut ev, minute(m), "enrolled", 20, ms(1500));
        }
        // p95 exactly at the threshold: not above.
        assert!(ev.evaluate(minute(15)).is_empty());
        let mut ev = Evaluator::new();
        for m in 0..15 {
            // One very slow confirm a minute is below the minimum volume.
            feed(&mut ev, minute(m), "enrolled", 1, ms(9000));
        }
        assert!(ev.evaluate(minute(15)).is_empty());
        // A gap minute interrupts it too.
        let mut ev = Evaluator::new();
        for m in (0..16).filter(|m| *m != 7) {
            feed(&mut ev, minute(m), "enrolled", 10, ms(3000));
        }
        assert!(ev.evaluate(minute(16)).is_empty());
    }

    /// A value far above its threshold under the minimum volume is "not enough data", never
    /// "ok", and the report says how much data there is and how much is needed.
    #[test]
    fn status_says_not_enough_data_below_the_gate() {
        let mut ev = Evaluator::new();
        // Before any evaluation nothing was measured.
        assert_eq!(state(&ev, APPROVAL_FAILURE).state, NOT_ENOUGH_DATA);
        feed(&mut ev, T0, "E_PG_UNAVAILABLE", 5, ms(10));
        feed(&mut ev, T0, "E_AMOUNT_MISMATCH", 3, ms(10));
        assert!(ev.evaluate(T0).is_empty());
        let s = state(&ev, APPROVAL_FAILURE);
        assert_eq!(s.state, NOT_ENOUGH_DATA);
        assert_eq!((s.value, s.threshold), (1.0, APPROVAL_MAX_FAILURE));
        assert_eq!((s.samples, s.min_samples), (5, APPROVAL_MIN_ATTEMPTS));
        let s = state(&ev, AMOUNT_MISMATCH);
        assert_eq!(s.state, NOT_ENOUGH_DATA);
        assert_eq!((s.samples, s.min_samples), (8, MISMATCH_MIN_CONFIRMS));
        assert!(s.value > 100.0, "{s:?}");
        let json = serde_json::to_value(&s).unwrap();
        for field in [
            "rule",
            "state",
            "value",
            "threshold",
            "minSamples",
            "samples",
            "gate",
        ] {
            assert!(json.get(field).is_some(), "{field} in {json}");
        }
        // Slow confirms in only some minutes: the fewest per minute is shown.
        let minute = |m: i64| T0 + time::Duration::minutes(m);
        for m in 0..15 {
            feed(
                &mut ev,
                minute(m),
                "enrolled",
                if m == 3 { 1 } else { 5 },
                ms(4000),
            );
        }
        ev.evaluate(minute(15));
        let s = state(&ev, CONFIRM_LATENCY);
        assert_eq!(s.state, NOT_ENOUGH_DATA);
        assert_eq!((s.samples, s.min_samples, s.value), (1, 3, 4000.0));
        // Enough healthy volume: "ok".
        feed(
            &mut ev,
            minute(15),
            "enrolled",
            APPROVAL_MIN_ATTEMPTS,
            ms(10),
        );
        ev.evaluate(minute(15) + time::Duration::seconds(1));
        let s = state(&ev, APPROVAL_FAILURE);
        assert_eq!(s.state, "ok", "{s:?}");
        assert!(s.samples >= APPROVAL_MIN_ATTEMPTS);
    }

    #[test]
    fn p95_is_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p95(&mut v), 95.0);
        assert_eq!(p95(&mut [7.0]), 7.0);
    }

    /// The process-wide path the server uses: middleware feed → ticker evaluation → JSON log
    /// event, gauge, snapshot and webhook. (The only test touching the global evaluator.)
    #[tokio::test]
    async fn global_evaluator_logs_gauges_snapshots_and_notifies() {
        let logs = crate::logging::capture();
        let (url, mut rx) = receiver().await;
        let notifier = Notifier::new(&url).unwrap();
        for _ in 0..APPROVAL_MIN_ATTEMPTS {
            crate::ops::metrics::record_confirm(outcome("E_PG_UNAVAILABLE"), Some(ms(20)));
        }
        let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);
        let ch = evaluate_global(now, Some(&notifier));
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!(ch[0].rule, APPROVAL_FAILURE);
        let snap = alerts_snapshot();
        assert_eq!(snap.len(), 3);
        let s = snap.iter().find(|s| s.rule == APPROVAL_FAILURE).unwrap();
        assert_eq!((s.state, s.value, s.threshold), ("firing", 1.0, 0.02));
        assert!(s.since.is_some());
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json[1]["state"], "firing");
        let posted = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(posted["text"].as_str().unwrap().contains("FIRING"));
        assert!(
            crate::ops::metrics::render()
                .contains("coursepay_alert_firing{rule=\"approval_failure_rate\"} 1")
        );
        let event = crate::logging::captured_lines(&logs)
            .into_iter()
            .find(|l| l["message"] == "alert.firing" && l["rule"] == APPROVAL_FAILURE)
            .expect("alert.firing logged");
        assert_eq!(event["threshold"], 0.02);
        assert_eq!(event["value"], 1.0);

        // Five quiet minutes later it resolves, and says so once.
        let later = now + time::Duration::minutes(6);
        let ch = evaluate_global(later, Some(&notifier));
        assert_eq!(ch.len(), 1);
        assert!(!ch[0].firing);
        assert!(evaluate_global(later, None).is_empty());
        let posted = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(posted["text"].as_str().unwrap().contains("RESOLVED"));
        assert!(
            crate::logging::captured_lines(&logs)
                .iter()
                .any(|l| l["message"] == "alert.resolved" && l["rule"] == APPROVAL_FAILURE)
        );
        assert!(
            crate::ops::metrics::render()
                .contains("coursepay_alert_firing{rule=\"approval_failure_rate\"} 0")
        );
    }

    /// A local Slack-like receiver: its URL and the bodies it got.
    async fn receiver() -> (
        String,
        tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    ) {
        // One HTTP/1.1 exchange per connection, read by hand: this crate has no HTTP server.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(buf[end + 4..end + 4 + len].to_vec());
                    }
                };
                if let Some(v) = body.and_then(|b| serde_json::from_slice(&b).ok()) {
                    let _ = tx.send(v);
                }
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });
        (format!("http://{addr}/hook"), rx)
    }

    #[tokio::test]
    async fn notifier_posts_slack_compatible_json() {
        let (url, mut rx) = receiver().await;
        let n = Notifier::new(&url).unwrap();
        let t = Transition {
            rule: APPROVAL_FAILURE,
            firing: true,
            value: 0.05,
            threshold: APPROVAL_MAX_FAILURE,
            at: T0,
        };
        n.notify(t.clone()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got["text"], t.text());
        assert_eq!(got["rule"], APPROVAL_FAILURE);
        assert_eq!(got["state"], "firing");

        // A receiver that is down: the error is reported, nothing panics.
        let dead = Notifier::new("http://127.0.0.1:9/hook").unwrap();
        assert!(dead.send(&t).await.is_err());
    }
}
