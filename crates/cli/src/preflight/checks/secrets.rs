//! §2 secrets: the service-role configuration report (`GET /v1/admin/config-report`, a yes/no
//! report that never holds a value), and at the end of the run, whether any answer echoed a
//! secret the preflight knows.

use super::{Target, strings, yes};
use crate::preflight::http::{Probe, Resp};
use crate::preflight::report::{Outcome, Report};
use flows::ops::config_report::{WEBHOOK_ROTATION_DAYS, toss_key_mode};
use serde_json::Value;

/// The rows read from the configuration report: failed together when it is refused.
const REPORT_ROWS: [&str; 5] = [
    "secrets.toss_secret_key",
    "secrets.service_role",
    "secrets.webhook_secret",
    "secrets.client_key",
    "secrets.production_mode",
];

/// §2 from `GET /v1/admin/config-report`; keeps the report in `t` for §6 and §8.
pub async fn run(p: &Probe, r: &mut Report, t: &mut Target) -> Result<(), String> {
    let anon = p.get("/v1/admin/config-report", None).await?;
    let rep = p.get("/v1/admin/config-report", Some(p.admin())).await?;
    r.set_all(
        &["secrets.supabase_url", "secrets.anon_key"],
        &Outcome::na(
            "not used: the storefront calls this service's API (GET /v1/config serves the Toss client key); no Supabase client key is involved",
        ),
    );
    if rep.status != 200 {
        let why = format!(
            "GET /v1/admin/config-report with the admin token → {} (pass --admin-token or set JWT_SECRET)",
            rep.brief()
        );
        r.set_all(&REPORT_ROWS, &Outcome::fail(why));
        return Ok(());
    }
    let c = rep.body;
    let env = Environment {
        production: c["environment"] == "production",
    };
    r.set("secrets.toss_secret_key", toss_secret_key(&c, env));
    r.set("secrets.service_role", service_role(&c, &anon, env));
    r.set("secrets.webhook_secret", webhook_secret(&c, env));
    r.set("secrets.client_key", client_key(&c, &t.client_key));
    r.set("secrets.webhook_rotation", webhook_rotation(&c));
    r.set("secrets.production_mode", production_mode(&c, env));
    t.config = Some(c);
    Ok(())
}

/// The target's environment: development defaults are accepted outside production.
#[derive(Clone, Copy)]
struct Environment {
    production: bool,
}

impl Environment {
    fn note(self) -> &'static str {
        if self.production {
            "production"
        } else {
            "development target: development defaults accepted"
        }
    }

    /// Whether the report's entry for one secret is acceptable as far as its default goes.
    fn accepts(self, secret: &Value) -> bool {
        !(self.production && yes(&secret["developmentDefault"]))
    }
}

fn toss_secret_key(c: &Value, env: Environment) -> Outcome {
    let key = &c["tossSecretKey"];
    Outcome::check(
        yes(&key["present"]) && yes(&c["tossKeysConsistent"]) && env.accepts(key),
        format!(
            "config report: present={}, mode={}, client key mode={}, expected={} ({}), development default={}",
            key["present"],
            key["mode"],
            c["tossClientKey"]["mode"],
            c["expectedTossKeyMode"],
            env.note(),
            key["developmentDefault"]
        ),
    )
}

/// The report itself was fetched with the service-role token; `anon` is the same without one.
fn service_role(c: &Value, anon: &Resp, env: Environment) -> Outcome {
    let jwt = &c["jwtSecret"];
    Outcome::check(
        anon.status == 401 && yes(&jwt["longEnough"]) && env.accepts(jwt),
        format!(
            "service-role token accepted (200), no token → {}; token secret long enough={}, development default={} ({})",
            anon.brief(),
            jwt["longEnough"],
            jwt["developmentDefault"],
            env.note()
        ),
    )
}

fn webhook_secret(c: &Value, env: Environment) -> Outcome {
    let ws = &c["webhookSecret"];
    let prev = &c["webhookSecretPrevious"];
    let prev_ok = prev.is_null() || (yes(&prev["longEnough"]) && yes(&prev["differsFromCurrent"]));
    Outcome::check(
        yes(&ws["present"]) && yes(&ws["longEnough"]) && prev_ok && env.accepts(ws),
        format!(
            "config report: present={}, ≥ 32 bytes={}, development default={}, previous secret: {} ({})",
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
            },
            env.note()
        ),
    )
}

/// The client key `GET /v1/config` serves must be of the mode the secret key expects.
fn client_key(c: &Value, served_key: &str) -> Outcome {
    let expected = c["expectedTossKeyMode"].as_str().unwrap_or("");
    let served = toss_key_mode(served_key);
    Outcome::check(
        !served_key.is_empty() && served == expected,
        format!("GET /v1/config serves a {served} client key; expected {expected}"),
    )
}

fn webhook_rotation(c: &Value) -> Outcome {
    let ws = &c["webhookSecret"];
    match ws["ageDays"].as_i64() {
        Some(d) if d <= WEBHOOK_ROTATION_DAYS => Outcome::pass(format!(
            "rotated {d} days ago ({}); due after {WEBHOOK_ROTATION_DAYS}",
            ws["rotatedAt"].as_str().unwrap_or("?")
        ))
        .optional(),
        Some(d) => Outcome::warn(format!(
            "rotated {d} days ago: over a quarter ({WEBHOOK_ROTATION_DAYS} days); rotate it"
        )),
        None => Outcome::warn(
            "rotation date not recorded (set WEBHOOK_SECRET_ROTATED_AT when rotating)",
        ),
    }
}

fn production_mode(c: &Value, env: Environment) -> Outcome {
    let problems = strings(&c["productionValidation"]["problems"]);
    if !env.production {
        return Outcome::warn(format!(
            "development mode; in production these would be refused: {}",
            problems.join("; ")
        ));
    }
    Outcome::check(
        problems.is_empty(),
        if problems.is_empty() {
            "COURSEPAY_ENV=production; the production start-up checks pass".to_owned()
        } else {
            format!("COURSEPAY_ENV=production but: {}", problems.join("; "))
        },
    )
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
