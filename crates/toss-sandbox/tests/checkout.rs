//! The HTML payment window: rendering, escaping, and the redirects of its three buttons,
//! served under a prefix as the server nests it.
#![allow(clippy::unwrap_used)]

mod common;

use common::{order_id, send};
use std::time::Duration;
use toss_sandbox::Sandbox;

struct Nested {
    base: String,
    http: reqwest::Client,
    sandbox: Sandbox,
}

/// The sandbox nested at `/toss-sandbox`, as `coursepay serve` mounts it.
async fn nested() -> Nested {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/toss-sandbox", listener.local_addr().unwrap());
    let sandbox = Sandbox::new(Default::default());
    let app = axum::Router::new().nest("/toss-sandbox", sandbox.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Nested {
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        sandbox,
    }
}

fn page_url(n: &Nested, order: &str, name: &str) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&format!("{}/sandbox/checkout", n.base)).unwrap();
    url.query_pairs_mut()
        .append_pair("orderId", order)
        .append_pair("amount", "15000")
        .append_pair("orderName", name)
        .append_pair(
            "successUrl",
            "https://shop.example/pay/success?from=sandbox",
        )
        .append_pair("failUrl", "https://shop.example/pay/fail");
    url
}

/// The form fields of the first form in `html` whose action is `action`, as a browser would
/// post them (the page's hidden inputs, entity-decoded, urlencoded).
fn form_body(html: &str, action: &str) -> String {
    let start = html.find(&format!(r#"action="{action}""#)).unwrap();
    let form = &html[start..start + html[start..].find("</form>").unwrap()];
    let mut pairs = reqwest::Url::parse("http://x/").unwrap();
    {
        let mut q = pairs.query_pairs_mut();
        for input in form.split("<input").skip(1) {
            let attr = |name: &str| {
                let s = input.find(&format!(r#"{name}=""#)).unwrap() + name.len() + 2;
                let e = s + input[s..].find('"').unwrap();
                input[s..e]
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&amp;", "&")
            };
            q.append_pair(&attr("name"), &attr("value"));
        }
    }
    pairs.query().unwrap_or_default().to_owned()
}

async fn render(n: &Nested, order: &str, name: &str) -> (reqwest::Url, String) {
    let url = page_url(n, order, name);
    let resp = n.http.get(url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    (url, resp.text().await.unwrap())
}

async fn press(n: &Nested, page: &reqwest::Url, html: &str, action: &str) -> reqwest::Url {
    // Resolve the relative action against the page URL, as a browser does.
    let target = page.join(action).unwrap();
    assert!(
        target.path().starts_with("/toss-sandbox/sandbox/checkout/"),
        "{target}"
    );
    let resp = n
        .http
        .post(target)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(html, action))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap()
}

fn query(url: &reqwest::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn renders_escaped_and_approve_redirects_to_success() {
    let n = nested().await;
    let order = order_id();
    let (page, html) = render(&n, &order, "<script>alert('x')</script> 강의").await;
    assert!(html.contains("SANDBOX"));
    assert!(html.contains("결제하기 / Pay"));
    assert!(html.contains("카드 거절 / Decline"));
    assert!(html.contains("취소 / Cancel"));
    assert!(html.contains("15,000"));
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; 강의"));

    let to = press(&n, &page, &html, "checkout/approve").await;
    assert_eq!(
        (to.host_str(), to.path()),
        (Some("shop.example"), "/pay/success")
    );
    assert!(
        to.query()
            .unwrap()
            .starts_with("from=sandbox&paymentType=NORMAL&"),
        "{to}"
    );
    assert_eq!(query(&to, "orderId").as_deref(), Some(order.as_str()));
    assert_eq!(query(&to, "amount").as_deref(), Some("15000"));
    let payment_key = query(&to, "paymentKey").unwrap();

    let payment = &n.sandbox.payments()[0];
    assert_eq!(payment.payment_key, payment_key);
    assert_eq!(payment.status, "IN_PROGRESS");
    assert_eq!(payment.order_name, "<script>alert('x')</script> 강의");

    // The success URL's parameters confirm, as the storefront would.
    let resp = n
        .http
        .post(format!("{}/v1/payments/confirm", n.base))
        .header("Authorization", common::basic(&format!("{}:", common::KEY)))
        .json(&serde_json::json!({"paymentKey": payment_key, "orderId": order, "amount": 15000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Paying the same order again fails the way Toss does, through failUrl.
    let to = press(&n, &page, &html, "checkout/approve").await;
    assert_eq!(to.path(), "/pay/fail");
    assert_eq!(query(&to, "code").as_deref(), Some("DUPLICATED_ORDER_ID"));
}

#[tokio::test]
async fn decline_and_cancel_redirect_to_fail_url() {
    let n = nested().await;
    let order = order_id();
    let (page, html) = render(&n, &order, "Course A").await;

    let to = press(&n, &page, &html, "checkout/decline").await;
    assert_eq!(to.path(), "/pay/fail");
    assert_eq!(query(&to, "code").as_deref(), Some("REJECT_CARD_COMPANY"));
    assert_eq!(query(&to, "orderId").as_deref(), Some(order.as_str()));
    assert!(query(&to, "message").is_some_and(|m| !m.is_empty()));

    let to = press(&n, &page, &html, "checkout/cancel").await;
    assert_eq!(query(&to, "code").as_deref(), Some("PAY_PROCESS_CANCELED"));
    assert_eq!(query(&to, "orderId").as_deref(), Some(order.as_str()));
    // Closing the window creates nothing.
    assert!(n.sandbox.payments().is_empty());
}

#[tokio::test]
async fn missing_or_invalid_parameters_are_a_400_page() {
    let n = nested().await;
    for query in [
        "".to_owned(),
        format!("orderId={}&amount=100&successUrl=https://a.b/s", order_id()),
        "orderId=bad&amount=100&successUrl=https://a.b/s&failUrl=https://a.b/f".to_owned(),
        format!(
            "orderId={}&amount=zero&successUrl=https://a.b/s&failUrl=https://a.b/f",
            order_id()
        ),
        format!(
            "orderId={}&amount=100&successUrl=javascript:alert(1)&failUrl=https://a.b/f",
            order_id()
        ),
    ] {
        let resp = n
            .http
            .get(format!("{}/sandbox/checkout?{query}", n.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        assert!(resp.text().await.unwrap().contains("SANDBOX"));
    }
    let (status, _) = send(
        n.http
            .post(format!("{}/sandbox/checkout/approve", n.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("orderId=x"),
    )
    .await;
    assert_eq!(status, 400);
}
