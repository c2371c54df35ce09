//! `coursepay webhook sign|send`: sign a JSON file the way a signing relay (or the sandbox)
//! does — `X-Timestamp` + `X-Signature: v1=<hex>` with a configured secret — and print the
//! headers or post it. What an operator uses to check a deployment and each step of a key
//! rotation (docs/webhooks.md). The file is sent byte for byte: the signature covers the raw
//! body, so it is never re-serialized.

use flows::webhook_auth::signature::sign_x_signature;
use secrecy::ExposeSecret;

/// The shortest secret the server accepts (its configuration refuses shorter ones), so a key
/// this command signs with would also work there.
pub const MIN_SECRET_BYTES: usize = 32;

/// The event type of `send --probe`: authentic probes are answered 200 and otherwise ignored.
pub const PROBE_EVENT: &str = "coursepay.rotation-probe";

/// What `send` posts.
pub enum Body {
    /// A file's exact bytes.
    File(String),
    /// A probe event with a fresh id: two probes never share a signature, so checking several
    /// instances (which share the replay guard) within one second is never answered 409.
    Probe,
}

impl Body {
    fn bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            Body::File(file) => std::fs::read(file).map_err(|e| format!("reading {file}: {e}")),
            Body::Probe => Ok(serde_json::json!({
                "eventType": PROBE_EVENT,
                "probeId": uuid::Uuid::new_v4().to_string(),
            })
            .to_string()
            .into_bytes()),
        }
    }
}

/// The secret named by `--secret-env` (default WEBHOOK_SECRET). For WEBHOOK_SECRET itself the
/// service's own configuration rules apply, so in development the development secret is used.
fn secret(env_name: &str) -> Result<String, String> {
    let secret = match std::env::var(env_name) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ if env_name == "WEBHOOK_SECRET" => flows::config::Config::from_env()
            .map(|c| c.webhook_secret.expose_secret().to_owned())
            .map_err(|e| e.to_string())?,
        _ => return Err(format!("{env_name} is not set")),
    };
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "{env_name} is {} bytes; the server refuses webhook secrets shorter than \
             {MIN_SECRET_BYTES} bytes (make one with: openssl rand -hex 32)",
            secret.len()
        ));
    }
    Ok(secret)
}

fn signed(
    body: &Body,
    timestamp: Option<i64>,
    secret_env: &str,
) -> Result<(Vec<u8>, String, String), String> {
    let secret = secret(secret_env)?;
    let body = body.bytes()?;
    let ts = timestamp.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let (ts, sig) = sign_x_signature(secret.as_bytes(), ts, &body);
    Ok((body, ts, sig))
}

pub fn sign(file: &str, timestamp: Option<i64>, secret_env: &str) -> Result<(), String> {
    let (_, ts, sig) = signed(&Body::File(file.to_owned()), timestamp, secret_env)?;
    println!("X-Timestamp: {ts}");
    println!("X-Signature: {sig}");
    Ok(())
}

pub async fn send(
    body: &Body,
    url: &str,
    timestamp: Option<i64>,
    secret_env: &str,
    transmission_id: Option<String>,
) -> Result<(), String> {
    let (body, ts, sig) = signed(body, timestamp, secret_env)?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("X-Timestamp", &ts)
        .header("X-Signature", &sig);
    if let Some(id) = transmission_id {
        req = req.header("tosspayments-webhook-transmission-id", id);
    }
    let resp = req
        .body(body)
        .send()
        .await
        .map_err(|e| format!("posting to {url}: {}", with_causes(&e.without_url())))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    // `| head -n 1` (the status alone) is how the docs use this: a reader that stops early
    // closes the pipe, which is its choice, not a failure of the delivery.
    let answer = format!("{}\n{text}\n", status.as_u16());
    match std::io::Write::write_all(&mut std::io::stdout().lock(), answer.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(format!("writing the answer: {e}"));
        }
        _ => {}
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", status.as_u16()))
    }
}

/// An error and its causes: reqwest's own message alone ("error sending request") does not say
/// whether the address refused, timed out or did not resolve.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_file_bytes_verbatim() {
        let path = std::env::temp_dir().join(format!("coursepay-sign-{}.json", std::process::id()));
        // Odd spacing on purpose: the signature must cover these exact bytes.
        std::fs::write(&path, b"{ \"eventType\" : \"x\" }\n").unwrap();
        // Setting a variable is `unsafe` in edition 2024 and the workspace forbids unsafe code,
        // so the test signs with a variable every environment has.
        let file = Body::File(path.to_str().unwrap().to_owned());
        let (body, ts, sig) = signed(&file, Some(1_700_000_000), "PATH").unwrap();
        let path_secret = std::env::var("PATH").unwrap();
        assert_eq!(body, b"{ \"eventType\" : \"x\" }\n");
        assert_eq!(ts, "1700000000");
        assert!(
            flows::webhook_auth::signature::verify_x_signature(
                &ts,
                &sig,
                &body,
                &[path_secret.trim().as_bytes()],
                1_700_000_000
            )
            .is_ok()
        );
        assert!(signed(&file, None, "COURSEPAY_SURELY_UNSET_VAR").is_err());
        // Two probes never share a body, so never a signature.
        let (a, ..) = signed(&Body::Probe, Some(1_700_000_000), "PATH").unwrap();
        let (b, ..) = signed(&Body::Probe, Some(1_700_000_000), "PATH").unwrap();
        assert_ne!(a, b);
        assert!(String::from_utf8(a).unwrap().contains(PROBE_EVENT));
        std::fs::remove_file(path).unwrap();
    }
}
