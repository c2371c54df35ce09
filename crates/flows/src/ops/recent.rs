//! The last request summary lines, kept in memory so an operator (and `coursepay preflight`)
//! can see what this instance logs without access to its log pipeline:
//! `GET /v1/admin/logs/recent` (`http::preflight_routes` in coursepay-api).
//!
//! Bounded ([`CAPACITY`] lines, the oldest dropped first) and per process. The lines are the
//! summary lines exactly as written to stdout, which already hold no secret or token; the
//! endpoint still redacts the fields that identify a person or a credential ([`redacted`]).

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

/// Summary lines kept.
pub const CAPACITY: usize = 200;

/// Fields whose values the endpoint replaces with `"[redacted]"` (the key stays, so a reader
/// can still see the line has the field).
pub const REDACTED_FIELDS: &[&str] = &["user_id", "auth_hash"];

/// The lines as text, as written: parsed only when the endpoint asks, which is rare, rather
/// than on every request.
fn ring() -> &'static Mutex<VecDeque<String>> {
    static RING: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(CAPACITY)))
}

/// Remember one summary line (called by [`crate::logging::request_line`]).
pub fn push(line: String) {
    if let Ok(mut r) = ring().lock() {
        if r.len() >= CAPACITY {
            r.pop_front();
        }
        r.push_back(line);
    }
}

/// The last `limit` lines, oldest first, redacted.
pub fn last(limit: usize) -> Vec<Value> {
    let Ok(r) = ring().lock() else {
        return Vec::new();
    };
    let skip = r.len().saturating_sub(limit);
    r.iter()
        .skip(skip)
        .filter_map(|text| serde_json::from_str(text).ok())
        .map(redacted)
        .collect()
}

/// `line` with [`REDACTED_FIELDS`] masked when they hold a value.
pub fn redacted(mut line: Value) -> Value {
    if let Value::Object(map) = &mut line {
        for field in REDACTED_FIELDS {
            if let Some(v) = map.get_mut(*field)
                && !v.is_null()
            {
                *v = Value::String("[redacted]".into());
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounded_and_redacted() {
        for i in 0..(CAPACITY + 5) {
            push(
                json!({"request_id": format!("recent-test-{i}"), "user_id": "u-1", "auth_hash": null})
                    .to_string(),
            );
        }
        let lines = last(CAPACITY + 50);
        assert!(lines.len() <= CAPACITY);
        let newest = lines.last().unwrap();
        assert_eq!(
            newest["request_id"],
            format!("recent-test-{}", CAPACITY + 4)
        );
        assert_eq!(newest["user_id"], "[redacted]");
        assert!(newest["auth_hash"].is_null());
        assert_eq!(last(1).len(), 1);
    }
}
