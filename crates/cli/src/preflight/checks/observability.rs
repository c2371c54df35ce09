//! §4 logs, metrics and alert rules: a sample request's summary line, `/metrics`, the three
//! rules (the service's own evaluator, or a Prometheus server); and §6's forged-signature
//! counter, read from the same `/metrics`.

use super::rid;
use crate::preflight::http::{Probe, Resp};
use crate::preflight::report::{Outcome, Report};
use flows::webhook_auth::INVALID_SIGNATURES_METRIC;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;

/// The seed's ten standard log fields.
const STANDARD_FIELDS: &[&str] = &[
    "request_id",
    "function_name",
    "provider",
    "provider_tx_id",
    "enrollment_id",
    "course_id",
    "user_id",
    "status",
    "error_code",
    "latency_ms",
];
/// The series the three alert rules read.
const ALERT_SERIES: &[&str] = &[
    "coursepay_confirm_total",
    "coursepay_confirm_duration_seconds_bucket",
    "coursepay_confirm_duration_seconds_count",
];
/// The three rules, as the in-process evaluator and as the Prometheus rule file name them.
const RULES: &[(&str, &str)] = &[
    ("amount_mismatch_rate", "CoursepayAmountMismatchRate"),
    ("approval_failure_rate", "CoursepayApprovalFailureRate"),
    ("confirm_latency_p95", "CoursepayConfirmLatencyP95"),
];

/// §4: a sample request's summary line, `/metrics`, the three rules.
pub async fn run(p: &Probe, r: &mut Report, prometheus_url: Option<&str>) -> Result<(), String> {
    summary_line(p, r).await?;
    r.set(
        "logs.dashboard",
        Outcome::na("optional; a Grafana dashboard over /metrics ships in deploy/grafana/"),
    );
    let metrics = metrics(p, r).await?;
    r.set("fail.sig_forgery", sig_forgery(&metrics.text));
    let rules = match prometheus_url {
        Some(prom) => prometheus_rules(p, prom).await?,
        None => service_rules(p).await?,
    };
    r.set("logs.alert_rules", rules);
    Ok(())
}

/// The wanted names that `present` does not know, in their order.
fn absent<'a>(
    wanted: impl IntoIterator<Item = &'a str>,
    present: impl Fn(&str) -> bool,
) -> Vec<&'a str> {
    wanted.into_iter().filter(|w| !present(w)).collect()
}

/// A request sent with a known X-Request-Id, found in the recent log lines: the three rows
/// about its summary line.
async fn summary_line(p: &Probe, r: &mut Report) -> Result<(), String> {
    let id = format!("preflight-{}", rid());
    let sample = p
        .send(
            Method::GET,
            "/v1/courses",
            None,
            None,
            &[("x-request-id", &id)],
        )
        .await?;
    let logs = p
        .get("/v1/admin/logs/recent?limit=200", Some(p.admin()))
        .await?;
    let line = logs.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|l| l["request_id"] == id.as_str()));
    let Some(l) = line else {
        let why = format!(
            "GET /v1/courses with X-Request-Id {id}; GET /v1/admin/logs/recent → {}, no line with that request_id",
            logs.brief()
        );
        r.set_all(
            &["logs.json", "logs.request_id", "logs.latency"],
            &Outcome::fail(why),
        );
        return Ok(());
    };
    r.set("logs.json", standard_fields(l));
    let echoed = sample.header("x-request-id").unwrap_or("absent");
    r.set(
        "logs.request_id",
        Outcome::check(
            echoed == id,
            format!(
                "sent X-Request-Id {id}: answered with X-Request-Id {echoed}, logged as request_id {}",
                l["request_id"]
            ),
        ),
    );
    r.set(
        "logs.latency",
        Outcome::check(
            l["latency_ms"].is_u64(),
            format!("latency_ms={} in the summary line", l["latency_ms"]),
        ),
    );
    Ok(())
}

fn standard_fields(line: &Value) -> Outcome {
    let missing = absent(STANDARD_FIELDS.iter().copied(), |f| line.get(f).is_some());
    Outcome::check(
        missing.is_empty(),
        if missing.is_empty() {
            format!(
                "the sample request's summary line (GET /v1/admin/logs/recent) is a JSON object with all ten standard fields (function_name={})",
                line["function_name"]
            )
        } else {
            format!("summary line lacks: {}", missing.join(", "))
        },
    )
}

/// `/metrics` has the series the alert rules read; sets `logs.metrics` and hands the answer on.
async fn metrics(p: &Probe, r: &mut Report) -> Result<Resp, String> {
    // A confirm without a token makes sure the confirm series exist (the rules exclude it).
    let warm = p.post("/v1/payments/confirm", None, &json!({})).await?;
    let metrics = p.get("/metrics", None).await?;
    let names: HashSet<&str> = metrics
        .text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing = absent(ALERT_SERIES.iter().copied(), |s| names.contains(s));
    r.set(
        "logs.metrics",
        Outcome::check(
            metrics.status == 200 && missing.is_empty(),
            format!(
                "GET /metrics → {} ({} series names) after one unauthenticated confirm ({}); {}",
                metrics.brief(),
                names.len(),
                warm.brief(),
                if missing.is_empty() {
                    format!("has {}", ALERT_SERIES.join(", "))
                } else {
                    format!("missing {}", missing.join(", "))
                }
            ),
        ),
    );
    Ok(metrics)
}

/// §6 forged signatures are counted: §3's refused deliveries show on `/metrics`.
fn sig_forgery(metrics: &str) -> Outcome {
    let forged = metric_value(metrics, INVALID_SIGNATURES_METRIC);
    Outcome::check(
        forged.is_some_and(|v| v >= 1.0),
        format!(
            "{INVALID_SIGNATURES_METRIC} = {} on /metrics after the refused deliveries of §3; too many from one IP → 429",
            forged.map_or("absent".into(), |v| v.to_string())
        ),
    )
}

async fn prometheus_rules(p: &Probe, prom: &str) -> Result<Outcome, String> {
    let rules = p
        .get(
            &format!("{}/api/v1/rules", prom.trim_end_matches('/')),
            None,
        )
        .await?;
    let loaded: HashSet<String> = rules.body["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    let missing = absent(RULES.iter().map(|x| x.1), |n| loaded.contains(n));
    Ok(Outcome::check(
        missing.is_empty(),
        format!(
            "Prometheus {prom}/api/v1/rules → {}: {}",
            rules.brief(),
            if missing.is_empty() {
                "all three rules loaded".to_owned()
            } else {
                format!("missing {}", missing.join(", "))
            }
        ),
    ))
}

async fn service_rules(p: &Probe) -> Result<Outcome, String> {
    let status = p.get("/v1/admin/status", Some(p.admin())).await?;
    let loaded: Vec<&str> = status.body["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["rule"].as_str())
        .collect();
    let missing = absent(RULES.iter().map(|x| x.0), |n| loaded.contains(&n));
    Ok(Outcome::check(
        missing.is_empty(),
        format!(
            "GET /v1/admin/status → {}: the service evaluates {} (pass --prometheus-url to check a Prometheus server too)",
            status.brief(),
            if loaded.is_empty() {
                "no rules".to_owned()
            } else {
                loaded.join(", ")
            }
        ),
    ))
}

/// The value of an unlabelled series (or the sum over its labels) in Prometheus text.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    #[test]
    fn metric_value_sums_a_series_over_its_labels_only() {
        let text =
            "# HELP x_total help\nx_total{ip=\"a\"} 2\nx_total{ip=\"b\"} 3\nx_total_created 9\n";
        assert_eq!(metric_value(text, "x_total"), Some(5.0));
        assert_eq!(metric_value(text, "y_total"), None);
    }
}
