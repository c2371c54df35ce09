//! Prometheus metrics: the `metrics` facade with the Prometheus exporter's recorder, rendered for
//! `GET /metrics` by [`scrape`]. Everything that records a metric does it through a function
//! here, so names, labels and buckets are defined once and every metric is described (an
//! undescribed metric fails `promtool check metrics`).
//!
//! The recorder is process-global and installed once ([`install`]); several `App`s in one
//! process (the tests) share it, so tests assert on deltas or on labels unique to them.
//!
//! Labels are bounded by construction: routes are templates (`/v1/orders/{orderId}`, never a
//! raw path; unmatched requests are `"unmatched"`), methods outside the usual set are
//! `"OTHER"`, confirm outcomes are catalog codes, Toss outcomes a fixed set.

use crate::App;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;
use time::OffsetDateTime;

pub const HTTP_REQUESTS: &str = "coursepay_http_requests_total";
pub const HTTP_DURATION: &str = "coursepay_http_request_duration_seconds";
pub const CONFIRMS: &str = "coursepay_confirm_total";
pub const CONFIRM_DURATION: &str = "coursepay_confirm_duration_seconds";
pub const TOSS_CALLS: &str = "coursepay_toss_calls_total";
pub const TOSS_DURATION: &str = "coursepay_toss_call_duration_seconds";
pub const DB_ROUND_TRIPS: &str = "coursepay_db_round_trips";
pub const CIRCUIT_STATE: &str = "coursepay_circuit_state";
pub const PAYMENTS_PAUSED: &str = "coursepay_payments_paused";
pub const WEBHOOK_INVALID_SIGNATURES: &str = "coursepay_webhook_invalid_signatures_total";
pub const RECONCILER_BACKLOG: &str = "coursepay_reconciler_backlog";
pub const OLDEST_OPEN_ORDER_AGE: &str = "coursepay_oldest_open_order_age_seconds";
pub const ALERT_FIRING: &str = "coursepay_alert_firing";
pub const PURGED_ROWS: &str = "coursepay_purged_rows_total";
pub const HTTP_CONNECTIONS: &str = "coursepay_http_connections";
pub const HTTP_CONNECTIONS_TIMED_OUT: &str = "coursepay_http_connections_timed_out_total";
pub const ALL: &[&str] = &[
    HTTP_REQUESTS,
    HTTP_DURATION,
    CONFIRMS,
    CONFIRM_DURATION,
    TOSS_CALLS,
    TOSS_DURATION,
    DB_ROUND_TRIPS,
    CIRCUIT_STATE,
    PAYMENTS_PAUSED,
    WEBHOOK_INVALID_SIGNATURES,
    RECONCILER_BACKLOG,
    OLDEST_OPEN_ORDER_AGE,
    ALERT_FIRING,
    PURGED_ROWS,
    HTTP_CONNECTIONS,
    HTTP_CONNECTIONS_TIMED_OUT,
];

/// Latency buckets, 5 ms … 10 s, with an edge at the seed's 1.5 s p95 target so the alert's
/// quantile is not interpolated across it.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];
/// Statements per request (seed §5 target: ≤ 3 on average).
pub const ROUND_TRIP_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the global recorder (once per process) and describe every metric.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(DB_ROUND_TRIPS.into()),
                        ROUND_TRIP_BUCKETS,
                    )
                });
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "metrics recorder not installed");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::error!(error = %e, "another metrics recorder is installed; /metrics will be empty");
                return None;
            }
            describe();
            ensure_defaults();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by route template, method and status code"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration by route template"
    );
    describe_counter!(
        CONFIRMS,
        "Payment confirms (buyer requests and server-side confirms) by outcome (enrolled, replayed or the error code) and alert class"
    );
    describe_histogram!(
        CONFIRM_DURATION,
        Unit::Seconds,
        "POST /v1/payments/confirm duration, all outcomes"
    );
    describe_counter!(
        TOSS_CALLS,
        "Toss API calls by operation (confirm, lookup, cancel) and outcome (ok, api_error, timeout, network)"
    );
    describe_histogram!(
        TOSS_DURATION,
        Unit::Seconds,
        "Toss API call duration by operation and outcome"
    );
    describe_histogram!(
        DB_ROUND_TRIPS,
        "Database statements sent per HTTP request, by route template"
    );
    describe_gauge!(
        CIRCUIT_STATE,
        "Toss circuit breaker: 0 closed, 1 half-open, 2 open"
    );
    describe_gauge!(
        PAYMENTS_PAUSED,
        "1 while an operator has paused payments, else 0"
    );
    describe_counter!(
        WEBHOOK_INVALID_SIGNATURES,
        "Webhook deliveries refused for an invalid or missing signature"
    );
    describe_gauge!(
        RECONCILER_BACKLOG,
        "Open (PENDING/CONFIRMING) orders untouched for over a minute: reconciler work"
    );
    describe_gauge!(
        OLDEST_OPEN_ORDER_AGE,
        Unit::Seconds,
        "Age of the oldest open order since it was last touched"
    );
    describe_gauge!(ALERT_FIRING, "In-process alert rules: 1 firing, 0 ok");
    describe_counter!(
        PURGED_ROWS,
        "Expired rows deleted by the retention purge, by table and kind"
    );
    describe_gauge!(HTTP_CONNECTIONS, "Client connections open now");
    describe_counter!(
        HTTP_CONNECTIONS_TIMED_OUT,
        "Connections closed for sending no complete request headers in time (reason=header) or idling (reason=idle)"
    );
}

/// The one-time token kinds the retention purge deletes (with the idempotency keys' `-`, the
/// `kind` label values of [`PURGED_ROWS`]).
const TOKEN_KINDS: [&str; 2] = [
    crate::webhook_auth::replay::KIND,
    crate::webhook_events::TRANSMISSION_KIND,
];

/// Every `(table, kind)` label pair [`record_purged`] can record.
pub fn purge_labels() -> Vec<(&'static str, &'static str)> {
    let mut labels = vec![(
        store::PurgedRows::IDEMPOTENCY_KEYS,
        store::PurgedRows::NO_KIND,
    )];
    labels.extend(TOKEN_KINDS.map(|kind| (store::PurgedRows::ONE_TIME_TOKENS, kind)));
    labels
}

/// Rows one purge batch deleted from `table` (`kind`: the one-time token kind, or `-`).
pub fn record_purged(table: &'static str, kind: &str, rows: u64) {
    install();
    counter!(PURGED_ROWS, "table" => table, "kind" => kind.to_owned()).increment(rows);
}

/// The open-connection gauge moved by `delta` (+1 accepted, -1 closed).
pub fn record_connection(delta: f64) {
    install();
    gauge!(HTTP_CONNECTIONS).increment(delta);
}

/// Why the edge closed a connection: the `reason` label of [`HTTP_CONNECTIONS_TIMED_OUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionTimeout {
    /// No complete request headers in time.
    Header,
    /// Kept alive between requests for too long.
    Idle,
}

impl ConnectionTimeout {
    pub const ALL: [ConnectionTimeout; 2] = [ConnectionTimeout::Header, ConnectionTimeout::Idle];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionTimeout::Header => "header",
            ConnectionTimeout::Idle => "idle",
        }
    }
}

/// A connection closed by the edge for being too slow.
pub fn record_connection_timeout(reason: ConnectionTimeout) {
    install();
    counter!(HTTP_CONNECTIONS_TIMED_OUT, "reason" => reason.as_str()).increment(1);
}

/// Route label: the template axum matched, or "unmatched" (never the raw path).
pub fn route_label(route: Option<&str>) -> String {
    route.unwrap_or("unmatched").to_owned()
}

/// The method labels besides "OTHER".
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .copied()
        .find(|m| *m == method)
        .unwrap_or("OTHER")
}

/// One finished HTTP request (called by the `observe` middleware).
pub fn record_request(
    route: Option<&str>,
    method: &str,
    status: u16,
    elapsed: Duration,
    round_trips: u32,
) {
    install();
    let route = route_label(route);
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method_label(method), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.clone()).record(elapsed.as_secs_f64());
    metrics::histogram!(DB_ROUND_TRIPS, "route" => route).record(f64::from(round_trips));
}

/// The `outcome` label of `coursepay_confirm_total`: what one confirm was — a buyer's request,
/// or a server-side confirm (settle-on-read, the reconciler) that called Toss itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// This confirm claimed the order and Toss captured the payment (answered `replayed: false`).
    Enrolled,
    /// A repeat of a confirm that already succeeded (`replayed: true`): no charge by this request.
    Replayed,
    /// The client went away before the confirm flow started (nginx's 499): nothing was done.
    /// A client leaving once the flow runs is counted with the flow's real outcome.
    ClientClosed,
    /// Answered with this error code.
    Error(domain::ErrorCode),
    /// Answered with this approval failure from a confirm that had already ended (a repeat of
    /// a declined confirm, or one a server-side confirm finished first): this request did not
    /// call Toss, so it is no approval attempt. Built by [`ConfirmOutcome::repeated`] only.
    Repeated(domain::ErrorCode),
}

impl ConfirmOutcome {
    /// The outcome of a request the confirm flow never ran for, from what it answered: its
    /// error code if any, else its status and whether it carried `Idempotent-Replayed`.
    pub fn of(error_code: Option<&str>, http_status: u16, replayed: bool) -> Self {
        match error_code {
            Some(code) => domain::ErrorCode::ALL
                .iter()
                .find(|c| c.as_str() == code)
                .map_or(ConfirmOutcome::Error(domain::ErrorCode::Internal), |c| {
                    ConfirmOutcome::Error(*c)
                }),
            None if http_status == CLIENT_CLOSED => ConfirmOutcome::ClientClosed,
            None if replayed => ConfirmOutcome::Replayed,
            None => ConfirmOutcome::Enrolled,
        }
    }

    /// `code` answered from the order as found, without calling Toss: a repeat when the code
    /// is an approval failure, otherwise simply that answer.
    pub fn repeated(code: domain::ErrorCode) -> Self {
        if crate::ops::alerts::classify(ConfirmOutcome::Error(code)).is_approval_failure() {
            ConfirmOutcome::Repeated(code)
        } else {
            ConfirmOutcome::Error(code)
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmOutcome::Enrolled => "enrolled",
            ConfirmOutcome::Replayed => "replayed",
            ConfirmOutcome::ClientClosed => "client_closed",
            ConfirmOutcome::Error(code) | ConfirmOutcome::Repeated(code) => code.as_str(),
        }
    }

    /// Every outcome the code can produce (the error codes come from the catalog's complete
    /// list; repeats are exactly the approval failures), each created at 0 on startup.
    pub fn all() -> impl Iterator<Item = ConfirmOutcome> {
        let codes = domain::ErrorCode::ALL.iter().copied();
        [
            ConfirmOutcome::Enrolled,
            ConfirmOutcome::Replayed,
            ConfirmOutcome::ClientClosed,
        ]
        .into_iter()
        .chain(codes.clone().map(ConfirmOutcome::Error))
        .chain(
            codes
                .map(ConfirmOutcome::repeated)
                .filter(|o| matches!(o, ConfirmOutcome::Repeated(_))),
        )
    }
}

/// One finished confirm, counted in `coursepay_confirm_total` (labelled with its outcome and
/// its alert class) and fed to the in-process alert evaluator — one function, so the two can
/// never disagree. `latency` is the buyer's request time; a server-side confirm has none and
/// stays out of the latency histogram and the latency rule. Requests refused before the confirm
/// flow ran (auth, validation) are left out of the histogram: they are fast and would hide a
/// slow provider.
pub fn record_confirm(outcome: ConfirmOutcome, latency: Option<Duration>) {
    install();
    let class = crate::ops::alerts::classify(outcome);
    counter!(CONFIRMS, "outcome" => outcome.as_str(), "class" => class.as_str()).increment(1);
    if let Some(latency) = latency
        && class != crate::ops::alerts::ConfirmClass::Rejected
    {
        metrics::histogram!(CONFIRM_DURATION).record(latency.as_secs_f64());
    }
    crate::ops::alerts::observe_confirm(outcome, latency);
}

/// One Toss API call. `outcome`: "ok", "api_error" (Toss answered an error body), "timeout",
/// "network" (connect/reset/unreadable answer).
pub fn record_toss_call(operation: &'static str, outcome: &'static str, elapsed: Duration) {
    install();
    counter!(TOSS_CALLS, "operation" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!(TOSS_DURATION, "operation" => operation, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// The `outcome` label of a Toss call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TossOutcome {
    Ok,
    ApiError,
    Timeout,
    Network,
}

impl TossOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TossOutcome::Ok => "ok",
            TossOutcome::ApiError => "api_error",
            TossOutcome::Timeout => "timeout",
            TossOutcome::Network => "network",
        }
    }

    /// Every value (a unit test checks each `TossError` maps into it).
    pub const ALL: [TossOutcome; 4] = [
        TossOutcome::Ok,
        TossOutcome::ApiError,
        TossOutcome::Timeout,
        TossOutcome::Network,
    ];
}

/// Every Toss operation label. The match makes a new `toss::Operation` fail to compile here
/// until it is listed.
pub const TOSS_OPERATIONS: [toss::Operation; 3] = {
    const fn listed(op: toss::Operation) -> usize {
        match op {
            toss::Operation::Confirm => 0,
            toss::Operation::Lookup => 1,
            toss::Operation::Cancel => 2,
        }
    }
    let ops = [
        toss::Operation::Confirm,
        toss::Operation::Lookup,
        toss::Operation::Cancel,
    ];
    let mut i = 0;
    while i < ops.len() {
        assert!(listed(ops[i]) == i);
        i += 1;
    }
    ops
};

/// The outcome label of a Toss call result.
pub fn toss_outcome<T>(result: &Result<T, toss::TossError>) -> &'static str {
    match result {
        Ok(_) => TossOutcome::Ok,
        Err(toss::TossError::Api { .. }) => TossOutcome::ApiError,
        Err(toss::TossError::Timeout) => TossOutcome::Timeout,
        Err(_) => TossOutcome::Network,
    }
    .as_str()
}

/// Circuit breaker states as the gauge encodes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

pub fn set_circuit_state(state: CircuitState) {
    install();
    let v = match state {
        CircuitState::Closed => 0.0,
        CircuitState::HalfOpen => 1.0,
        CircuitState::Open => 2.0,
    };
    gauge!(CIRCUIT_STATE).set(v);
}

pub fn set_payments_paused(paused: bool) {
    install();
    gauge!(PAYMENTS_PAUSED).set(if paused { 1.0 } else { 0.0 });
}

pub fn webhook_invalid_signature() {
    install();
    counter!(WEBHOOK_INVALID_SIGNATURES).increment(1);
}

pub fn set_reconciler_backlog(open_orders: u64) {
    install();
    gauge!(RECONCILER_BACKLOG).set(open_orders as f64);
}

pub fn set_oldest_open_order_age(age: Duration) {
    install();
    gauge!(OLDEST_OPEN_ORDER_AGE).set(age.as_secs_f64());
}

pub fn set_alert_firing(rule: &'static str, firing: bool) {
    install();
    gauge!(ALERT_FIRING, "rule" => rule).set(if firing { 1.0 } else { 0.0 });
}

/// The route label of requests no route matched (the storefront fallback).
pub const UNMATCHED: &str = "unmatched";

/// Register every `(route, method, status)` the router can answer at 0, and each route's
/// latency and round-trip histograms. The HTTP layer derives the list from its router's
/// OpenAPI document (`api::http::metric_series`); flows only knows how to record it.
pub fn register_http_series(series: &[(String, &'static str, String)]) {
    install();
    let mut routes = std::collections::BTreeSet::new();
    for (route, method, status) in series {
        counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => *method, "status" => status.clone())
            .increment(0);
        routes.insert(route.clone());
    }
    for route in routes {
        let _ = metrics::histogram!(HTTP_DURATION, "route" => route.clone());
        let _ = metrics::histogram!(DB_ROUND_TRIPS, "route" => route);
    }
}

/// Every series the alert rules and the dashboard read exists from the first scrape, at 0, for
/// every label value the code can produce: a counter that appears only at its first
/// increment hides that increment from `rate()`/`increase()` (there is no earlier sample to
/// difference against). The label values come from the same enums the recording code uses.
///
/// `coursepay_http_requests_total` gets every route × method × status the router can answer
/// when the HTTP layer builds its router ([`register_http_series`]).
fn ensure_defaults() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        counter!(WEBHOOK_INVALID_SIGNATURES).increment(0);
        for reason in ConnectionTimeout::ALL {
            counter!(HTTP_CONNECTIONS_TIMED_OUT, "reason" => reason.as_str()).increment(0);
        }
        for (table, kind) in purge_labels() {
            counter!(PURGED_ROWS, "table" => table, "kind" => kind).increment(0);
        }
        gauge!(CIRCUIT_STATE).increment(0.0);
        gauge!(PAYMENTS_PAUSED).increment(0.0);
        for rule in crate::ops::alerts::RULES {
            gauge!(ALERT_FIRING, "rule" => *rule).increment(0.0);
        }
        for outcome in ConfirmOutcome::all() {
            let class = crate::ops::alerts::classify(outcome).as_str();
            counter!(CONFIRMS, "outcome" => outcome.as_str(), "class" => class).increment(0);
        }
        // Registering a histogram makes it render with zero buckets.
        let _ = metrics::histogram!(CONFIRM_DURATION);
        for op in TOSS_OPERATIONS {
            for outcome in TossOutcome::ALL {
                let (op, outcome) = (op.as_str(), outcome.as_str());
                counter!(TOSS_CALLS, "operation" => op, "outcome" => outcome).increment(0);
                let _ = metrics::histogram!(TOSS_DURATION, "operation" => op, "outcome" => outcome);
            }
        }
    });
}

/// Read the open orders and set the backlog gauges (one statement). Errors leave the gauges
/// as they were: a scrape must not fail because the database is slow.
pub async fn refresh_backlog(app: &App, now: OffsetDateTime) {
    match crate::reconcile::backlog(app, now).await {
        Ok((count, oldest)) => {
            set_reconciler_backlog(u64::try_from(count).unwrap_or(0));
            set_oldest_open_order_age(Duration::from_secs(oldest.unwrap_or(0)));
        }
        Err(e) => tracing::warn!(error = %e, "backlog gauges not refreshed"),
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    match install() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => String::new(),
    }
}

/// What `GET /metrics` answers: the gauges of per-instance state refreshed, then every metric
/// in the Prometheus text exposition.
pub async fn scrape(app: &App) -> String {
    refresh_backlog(app, OffsetDateTime::now_utc()).await;
    // Circuit and pause are per-instance state read at scrape time: always current, and no
    // hook in the breaker or the switch can be forgotten.
    set_circuit_state(match app.breaker.snapshot().0 {
        crate::ops::breaker::CircuitState::Closed => CircuitState::Closed,
        crate::ops::breaker::CircuitState::HalfOpen => CircuitState::HalfOpen,
        crate::ops::breaker::CircuitState::Open => CircuitState::Open,
    });
    if let Ok(paused) = app.pause.is_paused(&app.store).await {
        set_payments_paused(paused);
    }
    render()
}

/// nginx's status for "the client closed the connection before the answer".
pub const CLIENT_CLOSED: u16 = 499;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(route_label(None), "unmatched");
        assert_eq!(
            route_label(Some("/v1/orders/{orderId}")),
            "/v1/orders/{orderId}"
        );
        assert_eq!(method_label("BREW"), "OTHER");
        assert_eq!(
            toss_outcome::<()>(&Err(toss::TossError::Timeout)),
            "timeout"
        );
        assert_eq!(
            toss_outcome::<()>(&Err(toss::TossError::Connect("x".into()))),
            "network"
        );
    }

    /// Every metric deploy/ refers to exists here (a renamed metric breaks the dashboard and
    /// the alerts silently otherwise), and the dashboard picks its datasource by variable.
    #[test]
    fn deploy_files_use_existing_metrics() {
        let dashboard = include_str!("../../../../deploy/grafana/coursepay.json");
        let rules = include_str!("../../../../deploy/prometheus/alerts.yml");
        let json: serde_json::Value = serde_json::from_str(dashboard).unwrap();
        assert_eq!(json["templating"]["list"][0]["type"], "datasource");
        let panels = json["panels"].as_array().unwrap();
        assert!(panels.len() >= 10);
        let exprs: Vec<String> = panels
            .iter()
            .flat_map(|p| p["targets"].as_array().unwrap().iter())
            .map(|t| t["expr"].as_str().unwrap().to_owned())
            .chain(std::iter::once(rules.to_owned()))
            .collect();
        let mut used = std::collections::BTreeSet::new();
        for e in &exprs {
            for (i, _) in e.match_indices("coursepay_") {
                let name: String = e[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| ALL.contains(b)))
                    .unwrap_or(&name)
                    .to_owned();
                assert!(ALL.contains(&base.as_str()), "unknown metric {name}");
                used.insert(base);
            }
        }
        for m in [
            CONFIRMS,
            CONFIRM_DURATION,
            TOSS_DURATION,
            DB_ROUND_TRIPS,
            RECONCILER_BACKLOG,
            CIRCUIT_STATE,
            PAYMENTS_PAUSED,
            ALERT_FIRING,
        ] {
            assert!(used.contains(m), "dashboard does not show {m}");
        }
    }

    /// Every confirm outcome and every Toss operation/outcome pair is rendered once the recorder
    /// is installed, before any event. (The recorder is shared by this binary's tests, so this
    /// checks presence; the real-Prometheus test checks the values from a fresh process.)
    #[test]
    fn labelled_series_exist_from_startup() {
        let text = render();
        for outcome in ConfirmOutcome::all() {
            let series = format!(
                "{CONFIRMS}{{outcome=\"{}\",class=\"{}\"}}",
                outcome.as_str(),
                crate::ops::alerts::classify(outcome).as_str()
            );
            assert!(text.contains(&series), "missing {series}");
        }
        assert!(text.contains(
            "coursepay_confirm_total{outcome=\"E_AMOUNT_MISMATCH\",class=\"amount_mismatch\"}"
        ));
        assert!(text.contains(
            "coursepay_confirm_total{outcome=\"E_PAYMENT_REJECTED\",class=\"replayed\"}"
        ));
        for op in TOSS_OPERATIONS {
            for outcome in TossOutcome::ALL {
                let labels = format!(
                    "{{operation=\"{}\",outcome=\"{}\"}}",
                    op.as_str(),
                    outcome.as_str()
                );
                assert!(text.contains(&format!("{TOSS_CALLS}{labels}")), "{labels}");
                assert!(
                    text.contains(&format!("{TOSS_DURATION}_count{labels}")),
                    "{labels}"
                );
            }
        }
        assert!(text.contains(&format!("{CONFIRM_DURATION}_count")));
    }

    #[test]
    fn toss_outcomes_are_listed() {
        let errors = [
            toss::TossError::Timeout,
            toss::TossError::Connect("x".into()),
        ];
        for e in errors {
            let label = toss_outcome::<()>(&Err(e));
            assert!(TossOutcome::ALL.iter().any(|o| o.as_str() == label));
        }
        assert_eq!(toss_outcome::<()>(&Ok(())), TossOutcome::Ok.as_str());
    }

    #[test]
    fn confirm_outcome_of_an_answer() {
        assert_eq!(ConfirmOutcome::of(None, 200, false).as_str(), "enrolled");
        assert_eq!(ConfirmOutcome::of(None, 200, true).as_str(), "replayed");
        assert_eq!(
            ConfirmOutcome::of(None, CLIENT_CLOSED, false).as_str(),
            "client_closed"
        );
        assert_eq!(
            ConfirmOutcome::of(Some("E_PG_TIMEOUT"), 504, false).as_str(),
            "E_PG_TIMEOUT"
        );
    }

    #[test]
    fn gauges_render_with_descriptions() {
        set_circuit_state(CircuitState::Open);
        set_payments_paused(true);
        let text = render();
        assert!(text.contains("# HELP coursepay_circuit_state"), "{text}");
        assert!(text.contains("coursepay_circuit_state 2"), "{text}");
        assert!(text.contains("coursepay_payments_paused 1"), "{text}");
        set_circuit_state(CircuitState::Closed);
        set_payments_paused(false);
        assert!(render().contains("coursepay_circuit_state 0"));
    }
}
