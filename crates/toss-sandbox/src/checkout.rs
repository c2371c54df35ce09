//! A stand-in for Toss's payment window, for demos and browser tests.
//!
//! Mirrored from Toss's payment-window flow (JS SDK `requestPayment`): the buyer approves and
//! is sent to `successUrl?paymentType=NORMAL&orderId=…&paymentKey=…&amount=…`, or fails and is
//! sent to `failUrl?code=…&message=…&orderId=…` with `REJECT_CARD_COMPANY` (card declined) or
//! `PAY_PROCESS_CANCELED` (buyer closed the window); closing the window creates no payment and
//! sends no webhook.
//!
//! Sandbox choices: the page is plain HTML with three forms posting to *relative* actions
//! (`checkout/approve`, ...) so it works wherever the router is nested; approving creates the
//! payment exactly like `POST /sandbox/payments` and a failure to create it (e.g.
//! `DUPLICATED_ORDER_ID`) goes to `failUrl` with that code; `successUrl`/`failUrl` must be
//! absolute http(s) URLs or absolute paths of printable ASCII (Toss requires absolute URLs; the
//! path form is allowed for same-origin demos), and the new parameters are appended after any
//! existing query and before any fragment; `orderName` is optional here; redirects are 303 so
//! the browser follows with a GET.

use crate::Sandbox;
use crate::ledger::{CreatePayment, valid_order_id};
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Params {
    order_id: Option<String>,
    amount: Option<String>,
    order_name: Option<String>,
    success_url: Option<String>,
    fail_url: Option<String>,
}

struct Checkout {
    order_id: String,
    amount: i64,
    order_name: Option<String>,
    success_url: String,
    fail_url: String,
}

fn validate(p: Params) -> Result<Checkout, &'static str> {
    let order_id = p
        .order_id
        .filter(|o| valid_order_id(o))
        .ok_or("orderId: 6–64자의 영문, 숫자, -, _ / 6 to 64 letters, digits, '-' or '_'")?;
    let amount = p
        .amount
        .and_then(|a| a.trim().parse::<i64>().ok())
        .filter(|a| *a >= 1)
        .ok_or("amount: 1 이상의 정수 / an integer of at least 1")?;
    let order_name = p.order_name.filter(|n| !n.trim().is_empty());
    if order_name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err("orderName: 100자 이하 / at most 100 characters");
    }
    let success_url = p
        .success_url
        .filter(|u| valid_return_url(u))
        .ok_or("successUrl: http(s) URL 또는 /경로 / an http(s) URL or an absolute path")?;
    let fail_url = p
        .fail_url
        .filter(|u| valid_return_url(u))
        .ok_or("failUrl: http(s) URL 또는 /경로 / an http(s) URL or an absolute path")?;
    Ok(Checkout {
        order_id,
        amount,
        order_name,
        success_url,
        fail_url,
    })
}

fn valid_return_url(u: &str) -> bool {
    let lower = u.to_ascii_lowercase();
    let shape = lower.starts_with("http://")
        || lower.starts_with("https://")
        || (u.starts_with('/') && !u.starts_with("//"));
    shape && u.len() <= MAX_URL_LEN && u.bytes().all(|b| b.is_ascii_graphic())
}

pub(crate) async fn page(query: Result<Query<Params>, QueryRejection>) -> Response {
    let checkout = match query
        .map_err(|_| "query string")
        .and_then(|Query(p)| validate(p))
    {
        Ok(c) => c,
        Err(reason) => return bad_request(reason),
    };
    let hidden = hidden_fields(&checkout);
    let name = checkout
        .order_name
        .as_deref()
        .unwrap_or("(주문명 없음 / no order name)");
    let body = format!(
        r#"<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>토스페이먼츠 샌드박스 결제창 / Toss Payments sandbox checkout</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f2f4f6; margin: 0; }}
main {{ max-width: 26rem; margin: 3rem auto; background: #fff; border-radius: 1rem; padding: 1.5rem; }}
.badge {{ background: #ffe8a3; color: #5c4400; padding: .5rem .75rem; border-radius: .5rem; font-size: .9rem; }}
dl {{ display: grid; grid-template-columns: auto 1fr; gap: .4rem 1rem; }}
dt {{ color: #6b7684; }} dd {{ margin: 0; font-weight: 600; word-break: break-all; }}
form {{ margin: .5rem 0; }}
button {{ width: 100%; padding: .8rem; border-radius: .5rem; border: 1px solid #d1d6db; background: #fff; font-size: 1rem; cursor: pointer; }}
button.pay {{ background: #1b64da; border-color: #1b64da; color: #fff; }}
</style>
</head>
<body>
<main>
<p class="badge">SANDBOX — 테스트 결제창입니다. 실제로 결제되지 않습니다. / This is a test payment window; no real money moves.</p>
<h1>결제하기 / Checkout</h1>
<dl>
<dt>주문명 / Order</dt><dd>{name}</dd>
<dt>주문번호 / Order ID</dt><dd>{order_id}</dd>
<dt>결제 금액 / Amount</dt><dd>{amount}원 (KRW)</dd>
<dt>결제수단 / Method</dt><dd>카드 (테스트) / Card (test)</dd>
</dl>
<form method="post" action="checkout/approve">{hidden}<button type="submit" class="pay">결제하기 / Pay</button></form>
<form method="post" action="checkout/decline">{hidden}<button type="submit">카드 거절 / Decline</button></form>
<form method="post" action="checkout/cancel">{hidden}<button type="submit">취소 / Cancel</button></form>
</main>
</body>
</html>
"#,
        name = escape(name),
        order_id = escape(&checkout.order_id),
        amount = group_thousands(checkout.amount),
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

pub(crate) async fn approve(
    State(sandbox): State<Sandbox>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let c = match form
        .map_err(|_| "form body")
        .and_then(|Form(p)| validate(p))
    {
        Ok(c) => c,
        Err(reason) => return bad_request(reason),
    };
    let req = CreatePayment {
        order_id: c.order_id.clone(),
        amount: c.amount,
        order_name: c.order_name.clone(),
        outcome: None,
        method: None,
        status: None,
    };
    match sandbox.create_payment(req) {
        Ok(p) => redirect(&append_query(
            &c.success_url,
            &[
                ("paymentType", "NORMAL"),
                ("orderId", &p.order_id),
                ("paymentKey", &p.payment_key),
                ("amount", &p.total_amount.to_string()),
            ],
        )),
        Err(e) => redirect(&append_query(
            &c.fail_url,
            &[
                ("code", e.code()),
                ("message", &e.message()),
                ("orderId", &c.order_id),
            ],
        )),
    }
}

pub(crate) async fn decline(form: Result<Form<Params>, FormRejection>) -> Response {
    fail(form, "REJECT_CARD_COMPANY", "결제 승인이 거절되었습니다.")
}

pub(crate) async fn cancel(form: Result<Form<Params>, FormRejection>) -> Response {
    fail(
        form,
        "PAY_PROCESS_CANCELED",
        "사용자에 의해 결제가 취소되었습니다.",
    )
}

fn fail(form: Result<Form<Params>, FormRejection>, code: &str, message: &str) -> Response {
    match form
        .map_err(|_| "form body")
        .and_then(|Form(p)| validate(p))
    {
        Ok(c) => redirect(&append_query(
            &c.fail_url,
            &[
                ("code", code),
                ("message", message),
                ("orderId", &c.order_id),
            ],
        )),
        Err(reason) => bad_request(reason),
    }
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        // Validation admits only printable ASCII and the appended part is percent-encoded, so
        // this is unreachable; answering 400 keeps it from ever becoming a panic.
        Err(_) => bad_request("redirect URL"),
    }
}

fn bad_request(reason: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\">\
         <title>잘못된 요청 / Bad request</title></head><body>\
         <h1>잘못된 결제 요청입니다 / Invalid payment request</h1>\
         <p>SANDBOX — {}</p></body></html>",
        escape(reason)
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

fn hidden_fields(c: &Checkout) -> String {
    let mut fields = vec![
        ("orderId", c.order_id.clone()),
        ("amount", c.amount.to_string()),
        ("successUrl", c.success_url.clone()),
        ("failUrl", c.fail_url.clone()),
    ];
    if let Some(name) = &c.order_name {
        fields.push(("orderName", name.clone()));
    }
    fields
        .iter()
        .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v)))
        .collect()
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends `params` to `url`'s query, keeping an existing query and fragment.
pub(crate) fn append_query(url: &str, params: &[(&str, &str)]) -> String {
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let sep = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{base}{sep}{query}{fragment}")
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn appends_after_existing_query_and_before_fragment() {
        assert_eq!(
            append_query("https://a.b/ok", &[("x", "1")]),
            "https://a.b/ok?x=1"
        );
        assert_eq!(
            append_query("https://a.b/ok?lang=ko#top", &[("x", "a b&c"), ("y", "결")]),
            "https://a.b/ok?lang=ko&x=a%20b%26c&y=%EA%B2%B0#top"
        );
        assert_eq!(append_query("/ok?", &[("x", "1")]), "/ok?x=1");
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn return_urls() {
        assert!(valid_return_url("https://shop.example/success"));
        assert!(valid_return_url("/success"));
        assert!(!valid_return_url("//evil.example/"));
        assert!(!valid_return_url("javascript:alert(1)"));
        assert!(!valid_return_url("https://a.b/with space"));
    }

    #[test]
    fn thousands() {
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(group_thousands(100), "100");
    }
}
