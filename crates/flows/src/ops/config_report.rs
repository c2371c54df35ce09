//! A yes/no report about this instance's configuration, for `GET /v1/admin/config-report`
//! (service role) and `coursepay preflight` (production checklist §2): which secrets are set,
//! whether they are long enough, whether the Toss keys agree with each other and with the
//! environment, whether the previous webhook secret is usable, how old the webhook secret is
//! when its rotation date is recorded, and whether this configuration would pass the
//! production start-up checks.
//!
//! It never holds a secret's value, length or prefix beyond the `live`/`test` mode of a Toss
//! key: only booleans, modes, dates and the messages of [`Config::from_lookup`], which name
//! variables and never values.

use crate::config::{
    Config, DEV_JWT_SECRET, DEV_TOSS_CLIENT_KEY, DEV_TOSS_SECRET_KEY, DEV_WEBHOOK_SECRET,
    Environment,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::HashMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Bytes a webhook or JWT secret needs (HMAC-SHA256 keys: at least the hash's size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Seed §2: the webhook secret is rotated once a quarter.
pub const WEBHOOK_ROTATION_DAYS: i64 = 92;

/// `live` or `test` from a Toss key's prefix (`live_sk_`, `test_ck_`, ...), else `unknown`.
pub fn toss_key_mode(key: &str) -> &'static str {
    if key.starts_with("live_") {
        "live"
    } else if key.starts_with("test_") {
        "test"
    } else {
        "unknown"
    }
}

/// What [`Config::from_lookup`] says about this configuration in production mode: the
/// messages of the start-up refusals (empty when it would start). Rebuilds the variables from
/// the values in use, so the rules live in one place.
pub fn production_problems(c: &Config) -> Vec<String> {
    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("COURSEPAY_ENV", "production".into());
    if let Some(u) = &c.database_url {
        vars.insert("DATABASE_URL", u.clone());
    }
    if let Some(b) = &c.toss_api_base {
        vars.insert("TOSS_API_BASE", b.clone());
    }
    vars.insert(
        "TOSS_SECRET_KEY",
        c.toss_secret_key.expose_secret().to_owned(),
    );
    vars.insert("TOSS_CLIENT_KEY", c.toss_client_key.clone());
    vars.insert(
        "WEBHOOK_SECRET",
        c.webhook_secret.expose_secret().to_owned(),
    );
    if let Some(p) = &c.webhook_secret_previous {
        vars.insert("WEBHOOK_SECRET_PREVIOUS", p.expose_secret().to_owned());
    }
    vars.insert("JWT_SECRET", c.jwt_secret.expose_secret().to_owned());
    vars.insert("CORS_ALLOWED_ORIGINS", c.cors_allowed_origins.join(","));
    if let Some(r) = &c.redis_url {
        vars.insert("REDIS_URL", r.expose_secret().to_owned());
    }
    let mut problems = match Config::from_lookup(&|k| vars.get(k).cloned()) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.split("; ").map(str::to_owned).collect(),
    };
    // Development defaults the start-up checks cannot see once a value is present.
    if c.webhook_secret.expose_secret() == DEV_WEBHOOK_SECRET {
        problems.push("WEBHOOK_SECRET is the public development secret".into());
    }
    if c.toss_client_key == DEV_TOSS_CLIENT_KEY || toss_key_mode(&c.toss_client_key) == "test" {
        problems.push("TOSS_CLIENT_KEY must be a live_ck_ key in production".into());
    }
    problems
}

/// The report (JSON, camelCase like the rest of the API).
pub fn report(c: &Config, now: OffsetDateTime) -> Value {
    let secret_key = c.toss_secret_key.expose_secret();
    let secret_mode = toss_key_mode(secret_key);
    let client_mode = toss_key_mode(&c.toss_client_key);
    let production = c.env == Environment::Production;
    // Live keys belong to production against Toss, test keys to development or the sandbox.
    let expected_mode = if production && !c.uses_sandbox() {
        "live"
    } else {
        "test"
    };
    let webhook = c.webhook_secret.expose_secret();
    let age_days = c.webhook_secret_rotated_at.map(|t| (now - t).whole_days());
    let previous = c.webhook_secret_previous.as_ref().map(|p| {
        let p = p.expose_secret();
        json!({
            "longEnough": p.len() >= MIN_SECRET_BYTES,
            "differsFromCurrent": p != webhook,
        })
    });
    let problems = production_problems(c);
    json!({
        "environment": if production { "production" } else { "development" },
        "sandbox": c.uses_sandbox(),
        // The kind of store, never its URL (which may carry a password).
        "database": if c.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
            "postgres"
        } else {
            "sqlite"
        },
        "tossSecretKey": {
            "present": !secret_key.is_empty(),
            "developmentDefault": secret_key == DEV_TOSS_SECRET_KEY,
            "mode": secret_mode,
        },
        "tossClientKey": {
            "present": !c.toss_client_key.is_empty(),
            "developmentDefault": c.toss_client_key == DEV_TOSS_CLIENT_KEY,
            "mode": client_mode,
        },
        "tossKeysConsistent": secret_mode == client_mode && secret_mode == expected_mode,
        "expectedTossKeyMode": expected_mode,
        "webhookSecret": {
            "present": !webhook.is_empty(),
            "longEnough": webhook.len() >= MIN_SECRET_BYTES,
            "developmentDefault": webhook == DEV_WEBHOOK_SECRET,
            "rotatedAt": c.webhook_secret_rotated_at.and_then(|t| t.format(&Rfc3339).ok()),
            "ageDays": age_days,
            "rotationDueDays": WEBHOOK_ROTATION_DAYS,
        },
        "webhookSecretPrevious": previous,
        "jwtSecret": {
            "present": !c.jwt_secret.expose_secret().is_empty(),
            "longEnough": c.jwt_secret.expose_secret().len() >= MIN_SECRET_BYTES,
            "developmentDefault": c.jwt_secret.expose_secret() == DEV_JWT_SECRET,
        },
        "corsAllowedOrigins": c.cors_allowed_origins,
        "circuitBreaker": {
            "failureThreshold": crate::ops::breaker::FAILURE_THRESHOLD,
            "cooldownSeconds": c.circuit_cooldown.as_secs(),
        },
        "productionValidation": {"passes": problems.is_empty(), "problems": problems},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn development_report_holds_no_secret() {
        let mut c = Config::development();
        c.webhook_secret_previous =
            Some(SecretString::from("previous-secret-value-0123456789abcdef"));
        let r = report(&c, OffsetDateTime::now_utc());
        let text = r.to_string();
        for s in c.secrets() {
            assert!(!text.contains(&s), "report echoes a secret");
        }
        assert_eq!(r["tossKeysConsistent"], true);
        assert_eq!(r["webhookSecret"]["developmentDefault"], true);
        assert_eq!(r["webhookSecretPrevious"]["longEnough"], true);
        assert_eq!(r["productionValidation"]["passes"], false);
    }

    #[test]
    fn test_key_in_production_is_inconsistent() {
        let mut c = Config::development();
        c.env = Environment::Production;
        c.toss_api_base = Some("https://api.tosspayments.com".into());
        let r = report(&c, OffsetDateTime::now_utc());
        assert_eq!(r["expectedTossKeyMode"], "live");
        assert_eq!(r["tossKeysConsistent"], false);
        let problems = r["productionValidation"]["problems"].to_string();
        assert!(problems.contains("TOSS_SECRET_KEY"), "{problems}");
        assert!(problems.contains("JWT_SECRET"), "{problems}");
    }

    #[test]
    fn webhook_secret_age() {
        let mut c = Config::development();
        let now = OffsetDateTime::now_utc();
        c.webhook_secret_rotated_at = Some(now - time::Duration::days(100));
        assert_eq!(report(&c, now)["webhookSecret"]["ageDays"], 100);
    }
}
