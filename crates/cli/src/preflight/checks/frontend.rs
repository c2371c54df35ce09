//! §8 front end: every error code has a Korean and an English message, and CORS allows the
//! configured origin and refuses another. The storefront's own behaviour is not observable here.

use super::{Target, strings};
use crate::preflight::http::Probe;
use crate::preflight::report::{Outcome, Report};
use reqwest::Method;

/// An origin no deployment lists.
const UNLISTED_ORIGIN: &str = "https://preflight-unlisted-origin.invalid";

/// §8: every error code has a ko and an en message; CORS from the configured origin allowed,
/// from another refused.
pub async fn run(p: &Probe, r: &mut Report, t: &Target) -> Result<(), String> {
    r.set_all(
        &["fe.invalidate", "fe.clear_state"],
        &Outcome::na(
            "front-end behaviour, not observable from the service's API (the storefront's own tests cover it)",
        ),
    );
    r.set("fe.i18n", i18n(p).await?);
    r.set("fe.cors", cors(p, t).await?);
    Ok(())
}

async fn i18n(p: &Probe) -> Result<Outcome, String> {
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
    Ok(Outcome::check(
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
    ))
}

/// A CORS preflight from an unlisted origin is refused; one from the first listed origin (from
/// the configuration report) is allowed.
async fn cors(p: &Probe, t: &Target) -> Result<Outcome, String> {
    let origins = t
        .config
        .as_ref()
        .map(|c| strings(&c["corsAllowedOrigins"]))
        .unwrap_or_default();
    let refused = allowed_origin(p, UNLISTED_ORIGIN).await?;
    let other_ok = refused.as_deref() != Some("*") && refused.as_deref() != Some(UNLISTED_ORIGIN);
    let refused_shown = refused.as_deref().unwrap_or("(none)");
    Ok(match origins.iter().find(|o| o.as_str() != "*") {
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
            let allowed = allowed_origin(p, origin).await?;
            let allowed_shown = allowed.as_deref().unwrap_or("(none)");
            Outcome::check(
                allowed.as_deref() == Some(origin.as_str()) && other_ok,
                format!(
                    "OPTIONS /v1/payments/confirm from {origin} → Access-Control-Allow-Origin {allowed_shown}; from {UNLISTED_ORIGIN} → {refused_shown}"
                ),
            )
        }
    })
}

/// The Access-Control-Allow-Origin of a CORS preflight for a confirm from `origin`.
async fn allowed_origin(p: &Probe, origin: &str) -> Result<Option<String>, String> {
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
