//! Service-role endpoints that let `coursepay preflight` (and an operator) check a running
//! deployment against the production checklist without reading its environment or its logs:
//!
//! - `GET /v1/admin/config-report`: the yes/no configuration report of
//!   [`crate::ops::config_report`] (never a secret's value).
//! - `GET /v1/admin/logs/recent?limit=N`: the last `N` (default 50, at most
//!   [`crate::ops::recent::CAPACITY`]) request summary lines of this instance, oldest first,
//!   with person and credential fields redacted.

use crate::App;
use crate::error::{Error, Result};
use crate::http::extract::ServiceRole;
use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Value, json};

/// `GET /v1/admin/config-report`.
pub async fn config_report(State(app): State<App>, _: ServiceRole) -> Json<Value> {
    Json(crate::ops::config_report::report(
        &app.config,
        time::OffsetDateTime::now_utc(),
    ))
}

/// `GET /v1/admin/logs/recent?limit=N`.
pub async fn recent_logs(_: ServiceRole, RawQuery(query): RawQuery) -> Result<Json<Value>> {
    let cap = crate::ops::recent::CAPACITY;
    let given = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("limit="));
    let limit = match given {
        None => 50,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=cap).contains(n))
            .ok_or_else(|| Error::invalid(format!("limit: a whole number from 1 to {cap}")))?,
    };
    Ok(Json(json!({
        "items": crate::ops::recent::last(limit),
        "redactedFields": crate::ops::recent::REDACTED_FIELDS,
    })))
}
