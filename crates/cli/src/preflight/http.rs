//! The preflight's HTTP client: every request it sends to the target goes through [`Probe`],
//! which records each answer's body so that the run can check at the end that no known secret
//! ever came back (checklist §2, "never echoed").

use reqwest::Method;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the Toss sandbox is mounted inside a sandbox-mode `coursepay serve`.
pub const SANDBOX_PREFIX: &str = "/toss-sandbox";

#[derive(Clone)]
pub struct Probe {
    pub base: String,
    http: reqwest::Client,
    pub admin_token: SecretString,
    jwt: flows::auth::JwtKeys,
    pub webhook_secret: SecretString,
    bodies: Arc<Mutex<Vec<String>>>,
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
    pub ms: f64,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Whether the answer is `status` with the error `code`: the shape every refusal check has.
    pub fn is(&self, status: u16, code: &str) -> bool {
        self.status == status && self.code() == code
    }
    /// `403 E_FORBIDDEN`, `200`: for evidence.
    pub fn brief(&self) -> String {
        match self.code() {
            "" => self.status.to_string(),
            c => format!("{} {c}", self.status),
        }
    }
}

impl Probe {
    pub fn new(
        base: &str,
        admin_token: Option<String>,
        jwt_secret: SecretString,
        webhook_secret: SecretString,
    ) -> Result<Self, String> {
        let jwt = flows::auth::JwtKeys::new(&jwt_secret);
        let admin_token = SecretString::from(admin_token.unwrap_or_else(|| jwt.mint(None, 600)));
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .map_err(|e| e.to_string())?,
            admin_token,
            jwt,
            webhook_secret,
            bodies: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// A short-lived token for a fresh buyer (minted with the JWT secret the preflight was given).
    pub fn new_user(&self) -> (domain::UserId, String) {
        let u = domain::UserId::new();
        (u, self.jwt.mint(Some(u), 600))
    }

    pub fn admin(&self) -> &str {
        self.admin_token.expose_secret()
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        // The target's rate limit counts the preflight like any client: a 429 is waited out
        // (its Retry-After, at most 2 s, a few times) rather than reported as the row's answer.
        let mut attempt = 0;
        let (r, started) = loop {
            attempt += 1;
            let started = Instant::now();
            let mut req = self.http.request(method.clone(), &url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = &body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.clone());
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let r = req
                .send()
                .await
                .map_err(|e| format!("{method} {path}: {e}"))?;
            if r.status().as_u16() != 429 || attempt > 4 {
                break (r, started);
            }
            let wait = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 2);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        };
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(mut b) = self.bodies.lock() {
            b.push(text.clone());
            for (name, value) in &headers {
                b.push(format!("{name}: {}", value.to_str().unwrap_or("")));
            }
        }
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            headers,
            text,
            body,
            ms,
        })
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<Resp, String> {
        self.send(Method::GET, path, token, None, &[]).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Resp, String> {
        self.send(
            Method::POST,
            path,
            token,
            Some(body.to_string().into_bytes()),
            &[],
        )
        .await
    }

    /// How many answers contain `needle` (a secret the preflight knows).
    pub fn echoes(&self, needle: &str) -> usize {
        if needle.is_empty() {
            return 0;
        }
        self.bodies
            .lock()
            .map(|b| b.iter().filter(|t| t.contains(needle)).count())
            .unwrap_or(0)
    }

    pub fn answers_seen(&self) -> usize {
        self.bodies.lock().map(|b| b.len()).unwrap_or(0)
    }
}
