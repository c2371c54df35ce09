//! The HTTP series `/metrics` shows from startup, derived from the router's OpenAPI document.

use flows::ops::metrics::{CLIENT_CLOSED, METHODS, UNMATCHED, method_label};
use std::sync::OnceLock;

/// Every `(route, method, status)` the router can answer, derived from the OpenAPI document —
/// itself generated from the routes, each operation's answers and the error catalog's statuses
/// for the codes each operation can give — plus [`CLIENT_CLOSED`] on every operation (any
/// client can leave) and the fallback's answers: storefront files (200 to GET and HEAD) and 404
/// to any method.
pub fn http_series() -> Vec<(String, &'static str, String)> {
    let mut series = Vec::new();
    let doc = crate::http::openapi::document();
    if let Some(paths) = doc["paths"].as_object() {
        for (route, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let Some(responses) = op["responses"].as_object() else {
                    continue;
                };
                let method = method_label(&method.to_ascii_uppercase());
                let closed = CLIENT_CLOSED.to_string();
                for status in responses.keys().chain(std::iter::once(&closed)) {
                    series.push((route.clone(), method, status.clone()));
                }
            }
        }
    }
    for method in METHODS.iter().copied().chain(std::iter::once("OTHER")) {
        series.push((UNMATCHED.to_owned(), method, "404".to_owned()));
        if matches!(method, "GET" | "HEAD") {
            series.push((UNMATCHED.to_owned(), method, "200".to_owned()));
        }
    }
    series
}

/// Register [`http_series`] at 0 (once per process: the document does not change).
pub fn register() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| flows::ops::metrics::register_http_series(&http_series()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::ops::metrics::{HTTP_DURATION, HTTP_REQUESTS};

    const CONFIRM_ROUTE: &str = "/v1/payments/confirm";

    /// Every HTTP series exists at 0 once registered, before any request; derived, not listed:
    /// the confirm's documented answers and the fallback are there.
    #[test]
    fn every_http_series_exists_from_startup() {
        register();
        let text = flows::ops::metrics::render();
        let http = http_series();
        for (route, method, status) in &http {
            let series = format!(
                "{HTTP_REQUESTS}{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
            );
            assert!(text.contains(&series), "missing {series}");
        }
        for (route, method, status) in [
            (CONFIRM_ROUTE, "POST", "200"),
            (CONFIRM_ROUTE, "POST", "400"),
            (CONFIRM_ROUTE, "POST", "402"),
            (CONFIRM_ROUTE, "POST", "409"),
            (CONFIRM_ROUTE, "POST", "499"),
            (CONFIRM_ROUTE, "POST", "504"),
            ("/v1/orders/{orderId}", "GET", "404"),
            (UNMATCHED, "GET", "404"),
        ] {
            assert!(
                http.iter()
                    .any(|(r, m, s)| r == route && *m == method && s == status),
                "{route} {method} {status}"
            );
        }
        assert!(text.contains(&format!(
            "{HTTP_DURATION}_count{{route=\"{CONFIRM_ROUTE}\"}}"
        )));
    }
}
