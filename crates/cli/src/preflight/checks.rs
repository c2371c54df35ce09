//! The checks of sections 2–9 against a running deployment, over HTTP. Each function fills the
//! rows it owns; what was sent and what came back goes into the row's evidence.
//!
//! What is sent is harmless on any target: webhooks whose event type the service ignores,
//! confirms for orders that do not exist. Anything that creates orders, payments or
//! enrollments, or flips the pause switch, runs only against a sandbox-mode target (its Toss
//! is the built-in sandbox, so no money moves).

use super::http::{Probe, Resp, SANDBOX_PREFIX};
use super::report::{Outcome, Report};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::HashSet;

/// The seed's ten standard log fields.
pub const STANDARD_FIELDS: &[&str] = &[
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
pub const ALERT_SERIES: &[&str] = &[
    "coursepay_confirm_total",
    "coursepay_confirm_duration_seconds_bucket",
    "coursepay_confirm_duration_seconds_count",
];
/// The three rules, as the in-process evaluator and as the Prometheus rule file name them.
pub const RULES: &[(&str, &str)] = &[
    ("amount_mismatch_rate", "CoursepayAmountMismatchRate"),
    ("approval_failure_rate", "CoursepayApprovalFailureRate"),
    ("confirm_latency_p95", "CoursepayConfirmLatencyP95"),
];
pub const P95_TARGET_MS: f64 = 1500.0;
pub const ROUND_TRIPS_TARGET: f64 = 3.0;
pub const BUNDLE_TARGET_BYTES: u64 = 250 * 1024;

/// What the first requests learned about the target.
#[derive(Default)]
pub struct Target {
    pub sandbox: bool,
    pub client_key: String,
    /// The configuration report, when the admin token was accepted.
    pub config: Option<Value>,
    /// p95 of the synthetic run, reused in §7.
    pub p95_ms: Option<f64>,
}

fn rid() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

fn yes(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

/// §7 readiness and §7 version; learns sandbox mode from `/v1/config`.
pub async fn basics(p: &Probe, r: &mut Report, t: &mut Target) -> Result<(), String> {
    let health = p.get("/healthz", None).await?;
    let ready = p.get("/readyz", None).await?;
    r.set(
        "rollback.readiness",
        Outcome::check(
            health.status == 200 && ready.status == 200,
            format!(
                "GET /healthz → {}; GET /readyz → {}",
                health.brief(),
                ready.brief()
            ),
        ),
    );
    let version = p.get("/version", None).await?;
    let commit = version.body["gitCommit"].as_str().unwrap_or("");
    let real = (7..=40).contains(&commit.len()) && commit.chars().all(|c| c.is_ascii_hexdigit());
    r.set(
        "rollback.approval_failure",
        if real {
            Outcome::pass(format!(
                "GET /version → version {}, gitCommit {commit}: the previous version can be redeployed from its commit",
                version.body["version"].as_str().unwrap_or("?")
            ))
        } else {
            Outcome::warn(format!(
                "GET /version → {}, gitCommit {:?}: not a commit; build with the commit recorded so a rollback knows what to redeploy",
                version.brief(),
                commit
            ))
        },
    );
    let cfg = p.get("/v1/config", None).await?;
    t.sandbox = yes(&cfg.body["sandbox"]);
    t.client_key = cfg.body["tossClientKey"].as_str().unwrap_or("").to_owned();
    Ok(())
}

/// §2 from `GET /v1/admin/config-report`.
pub async fn secrets(p: &Probe, r: &mut Report, t: &mut Target) -> Result<(), String> {
    let anon = p.get("/v1/admin/config-report", None).await?;
    let rep = p.get("/v1/admin/config-report", Some(p.admin())).await?;
    let na_supabase = "not used: the storefront calls this service's API (GET /v1/config serves the Toss client key); no Supabase client key is involved";
    r.set("secrets.supabase_url", Outcome::na(na_supabase));
    r.set("secrets.anon_key", Outcome::na(na_supabase));
    if rep.status != 200 {
        let why = format!(
            "GET /v1/admin/config-report with the admin token → {} (pass --admin-token or set JWT_SECRET)",
            rep.brief()
        );
        for id in [
            "secrets.toss_secret_key",
            "secrets.service_role",
            "secrets.webhook_secret",
            "secrets.client_key",
            "secrets.production_mode",
        ] {
            r.set(id, Outcome::fail(why.clone()));
        }
        return Ok(());
    }
    let c = rep.body.clone();
    let prod = c["environment"] == "production";
    let env_note = if prod {
        "production"
    } else {
        "development target: development defaults accepted"
    };
    let key = &c["tossSecretKey"];
    let ok = yes(&key["present"])
        && yes(&c["tossKeysConsistent"])
        && !(prod && yes(&key["developmentDefault"]));
    r.set(
        "secrets.toss_secret_key",
        Outcome::check(
            ok,
            format!(
                "config report: present={}, mode={}, client key mode={}, expected={} ({}), development default={}",
                key["present"],
                key["mode"],
                c["tossClientKey"]["mode"],
                c["expectedTossKeyMode"],
                env_note,
                key["developmentDefault"]
            ),
        ),
    );
    let jwt = &c["jwtSecret"];
    let ok =
        anon.status == 401 && yes(&jwt["longEnough"]) && !(prod && yes(&jwt["developmentDefault"]));
    r.set(
        "secrets.service_role",
        Outcome::check(
            ok,
            format!(
                "service-role token accepted (200), no token → {}; token secret long enough={}, development default={} ({env_note})",
                anon.brief(),
                jwt["longEnough"],
                jwt["developmentDefault"]
            ),
        ),
    );
    let ws = &c["webhookSecret"];
    let prev = &c["webhookSecretPrevious"];
    let prev_ok = prev.is_null() || (yes(&prev["longEnough"]) && yes(&prev["differsFromCurrent"]));
    let ok = yes(&ws["present"])
        && yes(&ws["longEnough"])
        && prev_ok
        && !(prod && yes(&ws["developmentDefault"]));
    r.set(
        "secrets.webhook_secret",
        Outcome::check(
            ok,
            format!(
                "config report: present={}, ≥ 32 bytes={}, development default={}, previous secret: {} ({env_note})",
                ws["present"],
                ws["longEnough"],
                ws["developmentDefault"],
                if prev.is_null() {
                    "none".to_owned()
                } else {
                    format!(
                        "≥ 32 bytes={}, differs from current={}",
                        prev["longEnough"], prev["differsFromCurrent"]
                    )
                }
            ),
        ),
    );
    let expected = c["expectedTossKeyMode"].as_str().unwrap_or("");
    let served = flows::ops::config_report::toss_key_mode(&t.client_key);
    r.set(
        "secrets.client_key",
        Outcome::check(
            !t.client_key.is_empty() && served == expected,
            format!("GET /v1/config serves a {served} client key; expected {expected}"),
        ),
    );
    let rotation_days = flows::ops::config_report::WEBHOOK_ROTATION_DAYS;
    r.set(
        "secrets.webhook_rotation",
        match ws["ageDays"].as_i64() {
            Some(d) if d <= rotation_days => Outcome::pass(format!(
                "rotated {d} days ago ({}); due after {rotation_days}",
                ws["rotatedAt"].as_str().unwrap_or("?")
            ))
            .optional(),
            Some(d) => Outcome::warn(format!(
                "rotated {d} days ago: over a quarter ({rotation_days} days); rotate it"
            )),
            None => Outcome::warn(
                "rotation date not recorded (set WEBHOOK_SECRET_ROTATED_AT when rotating)",
            ),
        },
    );
    let problems: Vec<String> = c["productionValidation"]["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    r.set(
        "secrets.production_mode",
        if prod {
            Outcome::check(
                problems.is_empty(),
                if problems.is_empty() {
                    "COURSEPAY_ENV=production; the production start-up checks pass".to_owned()
                } else {
                    format!("COURSEPAY_ENV=production but: {}", problems.join("; "))
                },
            )
        } else {
            Outcome::warn(format!(
                "development mode; in production these would be refused: {}",
                problems.join("; ")
            ))
        },
    );
    t.config = Some(c);
    Ok(())
}

fn webhook_body() -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // An event type the service does not handle: accepted and ignored, nothing changes.
    json!({"eventType": "COURSEPAY_PREFLIGHT", "createdAt": now, "data": {"preflightId": rid()}})
        .to_string()
        .into_bytes()
}

async fn post_webhook(p: &Probe, body: Vec<u8>, ts: &str, sig: &str) -> Result<Resp, String> {
    p.send(
        Method::POST,
        "/v1/webhooks/toss",
        None,
        Some(body),
        &[("x-timestamp", ts), ("x-signature", sig)],
    )
    .await
}

fn sign(p: &Probe, ts: i64, body: &[u8]) -> (String, String) {
    flows::webhook_auth::signature::sign_x_signature(
        p.webhook_secret.expose_secret().as_bytes(),
        ts,
        body,
    )
}

/// A tampered signature: the last hex digit changed.
pub fn tamper(sig: &str) -> String {
    let mut s = sig.to_owned();
    let last = if s.ends_with('0') { '1' } else { '0' };
    s.pop();
    s.push(last);
    s
}

/// §3: signed accepted, tampered 401, stale 401, replay 409, Idempotency-Key reuse 422.
pub async fn webhooks(p: &Probe, r: &mut Report) -> Result<(), String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = webhook_body();
    let (ts, sig) = sign(p, now, &body);
    let signed = post_webhook(p, body.clone(), &ts, &sig).await?;
    let mut changed = body.clone();
    if let Some(b) = changed.iter_mut().rev().find(|b| b.is_ascii_hexdigit()) {
        *b = if *b == b'0' { b'1' } else { b'0' };
    }
    let tampered = post_webhook(p, changed, &ts, &sig).await?;
    let ok = signed.status == 200
        && tampered.status == 401
        && tampered.code() == "E_WEBHOOK_INVALID_SIG";
    r.set(
        "hmac.algorithm",
        Outcome::check(
            ok,
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
        ),
    );
    let stale_body = webhook_body();
    let (sts, ssig) = sign(p, now - 600, &stale_body);
    let stale = post_webhook(p, stale_body, &sts, &ssig).await?;
    r.set(
        "hmac.timestamp",
        Outcome::check(
            stale.status == 401 && stale.code() == "E_WEBHOOK_INVALID_SIG",
            format!(
                "correctly signed, X-Timestamp 600 s old → {}",
                stale.brief()
            ),
        ),
    );
    let replay = post_webhook(p, body, &ts, &sig).await?;
    r.set(
        "hmac.reuse",
        Outcome::check(
            signed.status == 200 && replay.status == 409 && replay.code() == "E_WEBHOOK_REPLAYED",
            format!(
                "the accepted delivery sent again → {} (first: {})",
                replay.brief(),
                signed.brief()
            ),
        ),
    );
    // Idempotency-Key reuse with confirms for an order that does not exist: nothing to charge.
    let (_, token) = p.new_user();
    let key = format!("preflight-{}", rid());
    let order = format!("preflight-{}", rid());
    let first =
        json!({"paymentKey": format!("preflight_{}", rid()), "orderId": order, "amount": 1000});
    let mut second = first.clone();
    second["amount"] = json!(2000);
    let a = p
        .send(
            Method::POST,
            "/v1/payments/confirm",
            Some(&token),
            Some(first.to_string().into_bytes()),
            &[("idempotency-key", &key)],
        )
        .await?;
    let b = p
        .send(
            Method::POST,
            "/v1/payments/confirm",
            Some(&token),
            Some(second.to_string().into_bytes()),
            &[("idempotency-key", &key)],
        )
        .await?;
    r.set(
        "hmac.idempotency_store",
        Outcome::check(
            b.status == 422 && b.code() == "E_IDEMPOTENCY_KEY_REUSED",
            format!(
                "confirm of a non-existent order with Idempotency-Key → {}; same key, different amount → {}",
                a.brief(),
                b.brief()
            ),
        ),
    );
    Ok(())
}

/// One buyer's way through checkout → payment window (sandbox) → confirm.
struct Paid {
    token: String,
    order_id: String,
    amount: i64,
    payment_key: String,
}

async fn checkout_and_pay(p: &Probe, course_id: &str, pay: bool) -> Result<Paid, String> {
    let (_, token) = p.new_user();
    let co = p
        .post(
            "/v1/checkout",
            Some(&token),
            &json!({"courseId": course_id}),
        )
        .await?;
    if co.status != 201 {
        return Err(format!("POST /v1/checkout → {}", co.brief()));
    }
    let order_id = co.body["orderId"].as_str().unwrap_or("").to_owned();
    let amount = co.body["amount"].as_i64().unwrap_or(0);
    let mut payment_key = String::new();
    if pay {
        let pw = p
            .post(
                &format!("{SANDBOX_PREFIX}/sandbox/payments"),
                None,
                &json!({"orderId": order_id, "amount": amount, "orderName": "preflight"}),
            )
            .await?;
        if pw.status != 201 {
            return Err(format!("sandbox payment window → {}", pw.brief()));
        }
        payment_key = pw.body["paymentKey"].as_str().unwrap_or("").to_owned();
    }
    Ok(Paid {
        token,
        order_id,
        amount,
        payment_key,
    })
}

async fn confirm(p: &Probe, paid: &Paid, amount: i64) -> Result<Resp, String> {
    p.post(
        "/v1/payments/confirm",
        Some(&paid.token),
        &json!({"paymentKey": paid.payment_key, "orderId": paid.order_id, "amount": amount}),
    )
    .await
}

/// A published course at `price` (any price when None), created when there is none.
async fn course(p: &Probe, price: Option<i64>) -> Result<String, String> {
    let list = p.get("/v1/courses", None).await?;
    if let Some(c) = list.body["items"].as_array().and_then(|items| {
        items
            .iter()
            .find(|c| price.is_none_or(|want| c["price"].as_i64() == Some(want)))
    }) {
        return Ok(c["id"].as_str().unwrap_or("").to_owned());
    }
    let made = p
        .post(
            "/v1/admin/courses",
            Some(p.admin()),
            &json!({"title": "Course A", "price": price.unwrap_or(10_000)}),
        )
        .await?;
    if made.status != 201 {
        return Err(format!("POST /v1/admin/courses → {}", made.brief()));
    }
    Ok(made.body["id"].as_str().unwrap_or("").to_owned())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// §5 p95 and round trips (a short synthetic run, sandbox-mode targets only) and §3's
/// paymentKey cache (a successful confirm repeated).
pub async fn performance(
    p: &Probe,
    r: &mut Report,
    t: &mut Target,
    n: usize,
) -> Result<(), String> {
    if !t.sandbox {
        let why = "needs a sandbox-mode target (the synthetic run makes payments); run the preflight against a staging deployment with the sandbox";
        r.set("perf.p95", Outcome::na(why));
        r.set("perf.round_trips", Outcome::na(why));
        r.set("hmac.paymentkey_cache", Outcome::na(why));
        return Ok(());
    }
    let course_id = course(p, None).await?;
    let workers = 4.min(n.max(1));
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let p = p.clone();
        let course_id = course_id.clone();
        let count = n / workers + usize::from(w < n % workers);
        set.spawn(async move {
            let mut out = Vec::new();
            for _ in 0..count {
                let paid = checkout_and_pay(&p, &course_id, true).await?;
                let c = confirm(&p, &paid, paid.amount).await?;
                let trips: Option<f64> = c.header("x-db-round-trips").and_then(|v| v.parse().ok());
                out.push((c.status, c.brief(), c.ms, trips, paid, c.body.clone()));
            }
            Ok::<_, String>(out)
        });
    }
    let mut runs = Vec::new();
    while let Some(res) = set.join_next().await {
        runs.extend(res.map_err(|e| e.to_string())??);
    }
    let failed: Vec<String> = runs
        .iter()
        .filter(|x| x.0 != 200)
        .map(|x| x.1.clone())
        .collect();
    let mut lat: Vec<f64> = runs.iter().map(|x| x.2).collect();
    lat.sort_by(f64::total_cmp);
    let p95 = percentile(&lat, 0.95);
    t.p95_ms = Some(p95);
    let trips: Vec<f64> = runs.iter().filter_map(|x| x.3).collect();
    let mean_trips = trips.iter().sum::<f64>() / trips.len().max(1) as f64;
    r.set(
        "perf.p95",
        Outcome::check(
            failed.is_empty() && p95 < P95_TARGET_MS,
            format!(
                "{} fresh confirms against the sandbox, {workers} at a time: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms{}",
                runs.len(),
                percentile(&lat, 0.5),
                p95,
                lat.last().copied().unwrap_or(0.0),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!("; not 200: {}", failed.join(", "))
                }
            ),
        ),
    );
    let evidence = format!(
        "X-Db-Round-Trips of {} fresh confirms: mean {mean_trips:.2}, max {:.0}",
        trips.len(),
        trips.iter().copied().fold(0.0, f64::max)
    );
    let measured = trips.len() == runs.len() && !trips.is_empty();
    let sqlite = t.config.as_ref().is_some_and(|c| c["database"] == "sqlite");
    r.set(
        "perf.round_trips",
        if measured && sqlite && mean_trips > ROUND_TRIPS_TARGET {
            // The target is about a database across a network; SQLite runs in process and its
            // count includes every statement of its transactions (BEGIN and COMMIT too).
            Outcome::warn(format!(
                "{evidence} on SQLite (in process, every statement of its transactions counted); the ≤ 3 target applies to PostgreSQL, which production requires"
            ))
        } else {
            Outcome::check(measured && mean_trips <= ROUND_TRIPS_TARGET, evidence)
        },
    );
    let o = match runs.iter().find(|x| x.0 == 200) {
        Some((_, _, _, _, paid, body)) => {
            let again = confirm(p, paid, paid.amount).await?;
            let same = again.body["enrollmentId"] == body["enrollmentId"];
            Outcome::check(
                again.status == 200
                    && same
                    && again.body["replayed"] == true
                    && again.header("idempotent-replayed") == Some("true"),
                format!(
                    "a successful confirm repeated → {}, replayed={}, Idempotent-Replayed: {}, same enrollmentId={same}, {} DB round trips",
                    again.brief(),
                    again.body["replayed"],
                    again.header("idempotent-replayed").unwrap_or("absent"),
                    again.header("x-db-round-trips").unwrap_or("?")
                ),
            )
        }
        None => Outcome::fail("no confirm succeeded in the synthetic run"),
    };
    r.set("hmac.paymentkey_cache", o);
    Ok(())
}

/// §5 bundle size: the JavaScript a storefront at `/` loads, as served (gzip when offered).
pub async fn bundle(p: &Probe, r: &mut Report) -> Result<(), String> {
    let page = p
        .send(Method::GET, "/", None, None, &[("accept", "text/html")])
        .await?;
    let html = page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html"));
    if page.status != 200 || !html {
        r.set(
            "perf.bundle",
            Outcome::na(format!(
                "no storefront served at / (GET / → {})",
                page.brief()
            )),
        );
        return Ok(());
    }
    let base = reqwest::Url::parse(&format!("{}/", p.base)).map_err(|e| e.to_string())?;
    let mut scripts: Vec<String> = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in page.text.split(attr).skip(1) {
            if let Some(end) = part.find('"') {
                let link = &part[..end];
                if link.ends_with(".js") || link.ends_with(".mjs") {
                    scripts.push(link.to_owned());
                }
            }
        }
    }
    scripts.sort();
    scripts.dedup();
    let mut total = 0u64;
    let mut all_gzip = true;
    for s in &scripts {
        let url = base.join(s).map_err(|e| format!("{s}: {e}"))?;
        let a = p
            .send(
                Method::GET,
                url.as_str(),
                None,
                None,
                &[("accept-encoding", "gzip")],
            )
            .await?;
        if a.status != 200 {
            r.set(
                "perf.bundle",
                Outcome::fail(format!("{s} referenced by / → {}", a.brief())),
            );
            return Ok(());
        }
        all_gzip &= a.header("content-encoding") == Some("gzip");
        total += a.text.len() as u64;
    }
    let kb = total as f64 / 1024.0;
    let o = if scripts.is_empty() {
        Outcome::warn("the page at / references no JavaScript file")
    } else if total < BUNDLE_TARGET_BYTES {
        Outcome::pass(format!(
            "{} script(s) referenced by /: {kb:.1} KB {}",
            scripts.len(),
            if all_gzip {
                "gzip"
            } else {
                "as served (uncompressed: gzip is smaller)"
            }
        ))
    } else if all_gzip {
        Outcome::fail(format!(
            "{} script(s): {kb:.1} KB gzip ≥ 250 KB",
            scripts.len()
        ))
    } else {
        Outcome::warn(format!(
            "{} script(s): {kb:.1} KB served uncompressed; the gzip size is unknown (serve with gzip)",
            scripts.len()
        ))
    };
    r.set("perf.bundle", o);
    Ok(())
}

/// §4: a sample request's summary line, `/metrics`, the three rules.
pub async fn observability(
    p: &Probe,
    r: &mut Report,
    prometheus_url: Option<&str>,
) -> Result<(), String> {
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
        .and_then(|items| items.iter().find(|l| l["request_id"] == id.as_str()))
        .cloned();
    match &line {
        None => {
            let why = format!(
                "GET /v1/courses with X-Request-Id {id}; GET /v1/admin/logs/recent → {}, no line with that request_id",
                logs.brief()
            );
            for row in ["logs.json", "logs.request_id", "logs.latency"] {
                r.set(row, Outcome::fail(why.clone()));
            }
        }
        Some(l) => {
            let missing: Vec<&str> = STANDARD_FIELDS
                .iter()
                .copied()
                .filter(|f| l.get(*f).is_none())
                .collect();
            r.set(
                "logs.json",
                Outcome::check(
                    missing.is_empty(),
                    if missing.is_empty() {
                        format!(
                            "the sample request's summary line (GET /v1/admin/logs/recent) is a JSON object with all ten standard fields (function_name={})",
                            l["function_name"]
                        )
                    } else {
                        format!("summary line lacks: {}", missing.join(", "))
                    },
                ),
            );
            let echoed = sample.header("x-request-id") == Some(id.as_str());
            r.set(
                "logs.request_id",
                Outcome::check(
                    echoed,
                    format!(
                        "sent X-Request-Id {id}: answered with X-Request-Id {}, logged as request_id {}",
                        sample.header("x-request-id").unwrap_or("absent"),
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
        }
    }
    r.set(
        "logs.dashboard",
        Outcome::na("optional; a Grafana dashboard over /metrics ships in deploy/grafana/"),
    );
    // A confirm without a token makes sure the confirm series exist (the rules exclude it).
    let warm = p.post("/v1/payments/confirm", None, &json!({})).await?;
    let metrics = p.get("/metrics", None).await?;
    let names: HashSet<&str> = metrics
        .text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&str> = ALERT_SERIES
        .iter()
        .copied()
        .filter(|s| !names.contains(s))
        .collect();
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
    let forged = metric_value(
        &metrics.text,
        flows::webhook_auth::INVALID_SIGNATURES_METRIC,
    );
    r.set(
        "fail.sig_forgery",
        Outcome::check(
            forged.is_some_and(|v| v >= 1.0),
            format!(
                "{} = {} on /metrics after the refused deliveries of §3; too many from one IP → 429",
                flows::webhook_auth::INVALID_SIGNATURES_METRIC,
                forged.map_or("absent".into(), |v| v.to_string())
            ),
        ),
    );
    let o = match prometheus_url {
        Some(prom) => {
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
            let missing: Vec<&str> = RULES
                .iter()
                .map(|x| x.1)
                .filter(|n| !loaded.contains(*n))
                .collect();
            Outcome::check(
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
            )
        }
        None => {
            let status = p.get("/v1/admin/status", Some(p.admin())).await?;
            let loaded: Vec<String> = status.body["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["rule"].as_str().map(str::to_owned))
                .collect();
            let all = RULES.iter().all(|(n, _)| loaded.iter().any(|l| l == n));
            Outcome::check(
                all,
                format!(
                    "GET /v1/admin/status → {}: the service evaluates {} (pass --prometheus-url to check a Prometheus server too)",
                    status.brief(),
                    if loaded.is_empty() {
                        "no rules".to_owned()
                    } else {
                        loaded.join(", ")
                    }
                ),
            )
        }
    };
    r.set("logs.alert_rules", o);
    Ok(())
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

/// §6 breaker and pause switch; §7 reuses the pause outcome.
pub async fn resilience(p: &Probe, r: &mut Report, t: &mut Target) -> Result<(), String> {
    let status = p.get("/v1/admin/status", Some(p.admin())).await?;
    let threshold = t
        .config
        .as_ref()
        .map(|c| c["circuitBreaker"]["failureThreshold"].clone())
        .unwrap_or(Value::Null);
    let state = status.body["circuit"]["state"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    r.set(
        "fail.toss_outage",
        Outcome::check(
            threshold == 5 && status.status == 200 && state != "open",
            format!(
                "circuit opens after {threshold} consecutive provider failures (confirms then get 503 E_PG_UNAVAILABLE, retryable); now {state}, {} consecutive failures",
                status.body["circuit"]["consecutiveFailures"]
            ),
        ),
    );
    r.set(
        "fail.db_lock",
        Outcome::na("observed through latency: slow statements are logged with their name (SLOW_QUERY_MS); not checkable from outside"),
    );
    let pause = if yes(&status.body["paymentsPaused"]) {
        Outcome::warn("payments are paused right now: the round trip was not tried")
    } else if !t.sandbox {
        Outcome::na(
            "the pause round trip runs only against sandbox-mode targets (it would stop real payments)",
        )
    } else {
        pause_round_trip(p).await?
    };
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
            &json!({"paymentKey": format!("preflight_{}", rid()), "orderId": format!("preflight-{}", rid()), "amount": 1000}),
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

/// §8: every error code has a ko and an en message; CORS from the configured origin allowed,
/// from another refused.
pub async fn frontend(p: &Probe, r: &mut Report, t: &Target) -> Result<(), String> {
    let fe = "front-end behaviour, not observable from the service's API (the storefront's own tests cover it)";
    r.set("fe.invalidate", Outcome::na(fe));
    r.set("fe.clear_state", Outcome::na(fe));
    let ko = p.get("/v1/i18n/ko", None).await?;
    let en = p.get("/v1/i18n/en", None).await?;
    let mut missing = Vec::new();
    for code in domain::ErrorCode::ALL {
        let key = code.i18n_key();
        for (lang, map) in [("ko", &ko.body), ("en", &en.body)] {
            if map[&key].as_str().is_none_or(str::is_empty) {
                missing.push(format!("{lang}:{key}"));
            }
        }
    }
    r.set(
        "fe.i18n",
        Outcome::check(
            ko.status == 200 && en.status == 200 && missing.is_empty(),
            if missing.is_empty() {
                format!(
                    "GET /v1/i18n/ko and /v1/i18n/en: all {} error codes have a ui.payment.error.* message in both",
                    domain::ErrorCode::ALL.len()
                )
            } else {
                format!(
                    "GET /v1/i18n/ko → {}, /v1/i18n/en → {}; missing messages: {}",
                    ko.brief(),
                    en.brief(),
                    missing.join(", ")
                )
            },
        ),
    );
    let origins: Vec<String> = t
        .config
        .as_ref()
        .and_then(|c| c["corsAllowedOrigins"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let other = "https://preflight-unlisted-origin.invalid";
    let refused = cors(p, other).await?;
    let other_ok = refused.as_deref() != Some("*") && refused.as_deref() != Some(other);
    let refused_shown = refused.as_deref().unwrap_or("(none)");
    let o = match origins.iter().find(|o| o.as_str() != "*") {
        _ if origins.iter().any(|o| o == "*") => Outcome::fail(format!(
            "allowed origins include *: an unlisted origin is answered Access-Control-Allow-Origin {refused_shown}"
        )),
        None if t.config.is_none() => {
            Outcome::fail("allowed origins unknown (the configuration report was refused)")
        }
        None => Outcome::check(
            other_ok,
            format!(
                "no browser origin allowed (same-origin storefront only); unlisted origin → Access-Control-Allow-Origin {refused_shown}"
            ),
        ),
        Some(origin) => {
            let allowed = cors(p, origin).await?;
            let allowed_shown = allowed.as_deref().unwrap_or("(none)");
            Outcome::check(
                allowed.as_deref() == Some(origin.as_str()) && other_ok,
                format!(
                    "OPTIONS /v1/payments/confirm from {origin} → Access-Control-Allow-Origin {allowed_shown}; from {other} → {refused_shown}"
                ),
            )
        }
    };
    r.set("fe.cors", o);
    Ok(())
}

/// The Access-Control-Allow-Origin of a CORS preflight for a confirm from `origin`.
async fn cors(p: &Probe, origin: &str) -> Result<Option<String>, String> {
    let a = p
        .send(
            Method::OPTIONS,
            "/v1/payments/confirm",
            None,
            None,
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
            ],
        )
        .await?;
    Ok(a.header("access-control-allow-origin").map(str::to_owned))
}

/// §9: the five QA scenarios end to end (only with `--qa`, only against a sandbox target).
pub async fn qa(p: &Probe, r: &mut Report, t: &Target, enabled: bool) -> Result<(), String> {
    let ids = [
        "qa.normal",
        "qa.tamper",
        "qa.duplicate",
        "qa.network",
        "qa.bad_signature",
    ];
    if !enabled {
        for id in ids {
            r.set(
                id,
                Outcome::na("run with --qa against a sandbox-mode target"),
            );
        }
        return Ok(());
    }
    if !t.sandbox {
        for id in ids {
            r.set(
                id,
                Outcome::unverified(
                    "--qa needs a sandbox-mode target (these scenarios make payments)",
                ),
            );
        }
        return Ok(());
    }
    let stats = |p: Probe| async move {
        p.get(&format!("{SANDBOX_PREFIX}/sandbox/stats"), None)
            .await
            .map(|s| s.body["confirmCalls"].as_i64().unwrap_or(-1))
    };
    let course_id = course(p, Some(10_000)).await?;
    // 1. normal payment
    let buyer = checkout_and_pay(p, &course_id, true).await?;
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
    r.set(
        "qa.normal",
        Outcome::check(
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
        ),
    );
    // 2. amount tampering
    let tamperer = checkout_and_pay(p, &course_id, true).await?;
    let before = stats(p.clone()).await?;
    let tampered = confirm(p, &tamperer, tamperer.amount - 1_000).await?;
    let after = stats(p.clone()).await?;
    r.set(
        "qa.tamper",
        Outcome::check(
            tampered.status == 400 && tampered.code() == "E_AMOUNT_MISMATCH" && before == after,
            format!(
                "confirm with {} instead of {} → {}; Toss confirm calls {before} → {after} (provider not called)",
                tamperer.amount - 1_000,
                tamperer.amount,
                tampered.brief()
            ),
        ),
    );
    // 3. duplicate confirm
    let again = confirm(p, &buyer, buyer.amount).await?;
    let mine = p.get("/v1/me/enrollments", Some(&buyer.token)).await?;
    let count = mine.body["items"].as_array().map_or(0, |i| {
        i.iter()
            .filter(|e| e["courseId"] == course_id.as_str())
            .count()
    });
    r.set(
        "qa.duplicate",
        Outcome::check(
            again.status == 200 && again.body["enrollmentId"] == enrollment_id.as_str() && count == 1,
            format!(
                "same payload again → {}, same enrollmentId={}, replayed={}; the buyer has {count} enrollment(s) in the course",
                again.brief(),
                again.body["enrollmentId"] == enrollment_id.as_str(),
                again.body["replayed"]
            ),
        ),
    );
    // 4. network interruption: approved, never confirmed, the buyer comes back
    let gone = checkout_and_pay(p, &course_id, true).await?;
    let back = p
        .get(&format!("/v1/orders/{}", gone.order_id), Some(&gone.token))
        .await?;
    let theirs = p.get("/v1/me/enrollments", Some(&gone.token)).await?;
    let enrolled = theirs.body["items"].as_array().is_some_and(|i| {
        i.iter()
            .any(|e| e["courseId"] == course_id.as_str() && e["status"] == "ENROLLED")
    });
    r.set(
        "qa.network",
        Outcome::check(
            back.status == 200 && back.body["status"] == "PAID" && enrolled,
            format!(
                "approved without a confirm; GET /v1/orders/{{orderId}} → {} {} enrollmentId={}; enrolled={enrolled}",
                back.brief(),
                back.body["status"],
                back.body["enrollmentId"]
            ),
        ),
    );
    // 5. bad signature
    let body = webhook_body();
    let (ts, sig) = sign(p, time::OffsetDateTime::now_utc().unix_timestamp(), &body);
    let bad = post_webhook(p, body, &ts, &tamper(&sig)).await?;
    r.set(
        "qa.bad_signature",
        Outcome::check(
            bad.status == 401 && bad.code() == "E_WEBHOOK_INVALID_SIG",
            format!("X-Signature with one hex digit changed → {}", bad.brief()),
        ),
    );
    Ok(())
}

/// §2 "never echoed": no answer (bodies and headers) held a secret the preflight knows.
pub fn never_echoed(p: &Probe, r: &mut Report, secrets: &[(&str, String)]) {
    let leaks: Vec<String> = secrets
        .iter()
        .filter(|(_, v)| v.len() >= 8 && p.echoes(v) > 0)
        .map(|(n, v)| format!("{n} in {} answer(s)", p.echoes(v)))
        .collect();
    let names: Vec<&str> = secrets.iter().map(|(n, _)| *n).collect();
    r.set(
        "secrets.never_echoed",
        Outcome::check(
            leaks.is_empty(),
            if leaks.is_empty() {
                format!(
                    "none of {} appeared in the {} response bodies and header values the run received (recent log lines included)",
                    names.join(", "),
                    p.answers_seen()
                )
            } else {
                format!("echoed: {}", leaks.join("; "))
            },
        ),
    );
}
