//! The language of problem+json texts: `title`, and `detail` where it is the fixed text of the
//! code, follow the request's `Accept-Language` (Korean or English); `code` never changes.
//! Korean is the default: the storefront's buyers are Korean, and a request without the header
//! (or asking only for languages we lack) gets Korean.
//!
//! The outermost middleware keeps the chosen locale in a task-local for the whole request, so
//! every place that renders an error (handlers, extractors, the rate limiter, the panic
//! catcher) uses it without passing it around.

use axum::http::HeaderMap;
use domain::Locale;

pub const DEFAULT: Locale = Locale::Ko;

tokio::task_local! {
    static LOCALE: Locale;
}

/// The locale of the current request ([`DEFAULT`] outside one).
pub fn current() -> Locale {
    LOCALE.try_with(|l| *l).unwrap_or(DEFAULT)
}

/// The best supported language of an `Accept-Language` value (RFC 9110 §12.5.4): the highest
/// `q` wins, the earlier entry on a tie; `q=0` means "not this one"; `en-GB` matches `en`; `*`
/// matches the default. None when nothing listed is supported.
pub fn negotiate(header: &str) -> Option<Locale> {
    let mut best: Option<(f32, Locale)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .next()
            .map_or(Some(1.0), |v| v.trim().parse::<f32>().ok());
        let Some(q) = q.filter(|q| (0.0..=1.0).contains(q) && *q > 0.0) else {
            continue;
        };
        let primary = tag.split('-').next().unwrap_or("");
        let locale = match primary {
            "ko" => Locale::Ko,
            "en" => Locale::En,
            "*" => DEFAULT,
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, locale));
        }
    }
    best.map(|(_, l)| l)
}

/// The locale a request's `Accept-Language` asks for ([`DEFAULT`] without one we support).
pub fn of(headers: &HeaderMap) -> Locale {
    headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(negotiate)
        .unwrap_or(DEFAULT)
}

/// Runs `inner` (the rest of a request) in `locale`. Called by the outermost middleware rather
/// than being a middleware of its own: each `from_fn` layer clones everything beneath it on
/// every request.
pub fn scope<F: std::future::Future>(
    locale: Locale,
    inner: F,
) -> impl std::future::Future<Output = F::Output> {
    LOCALE.scope(locale, inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate("en"), Some(Locale::En));
        assert_eq!(negotiate("ko-KR,ko;q=0.9,en-US;q=0.8"), Some(Locale::Ko));
        assert_eq!(negotiate("en-US,en;q=0.9,ko;q=0.8"), Some(Locale::En));
        assert_eq!(negotiate("fr;q=1, en;q=0.5, ko;q=0.7"), Some(Locale::Ko));
        assert_eq!(negotiate("EN-gb"), Some(Locale::En));
        assert_eq!(negotiate("en;q=0, ko;q=0.1"), Some(Locale::Ko));
        assert_eq!(negotiate("*"), Some(DEFAULT));
        assert_eq!(negotiate("fr, de"), None);
        assert_eq!(negotiate("en;q=banana"), None);
        assert_eq!(negotiate(""), None);
    }

    #[tokio::test]
    async fn default_outside_a_request_and_scoped_inside() {
        assert_eq!(current(), Locale::Ko);
        assert_eq!(
            LOCALE.scope(Locale::En, async { current() }).await,
            Locale::En
        );
    }
}
