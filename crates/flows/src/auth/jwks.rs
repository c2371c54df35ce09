//! The Supabase project's public signing keys (a JWKS), fetched over HTTP and cached.
//!
//! Keys are chosen by `kid`. The set is re-read when it is older than its time to live, or when
//! a token names a `kid` the cache does not hold (a key rotation: the project started signing
//! with a new key). Re-reads are rate-limited and single-flight: however many tokens with
//! forged or unknown `kid`s arrive, the endpoint is asked at most once per `min_interval`, and
//! concurrent requests wait for the one fetch in flight instead of starting their own. A
//! failed re-read keeps the keys already known; a successful one replaces them, so a key the
//! project removed stops being accepted.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a fetched key set is used before it is re-read.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// The least time between two fetches, whatever tokens arrive.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// A verification key and the one algorithm it may be used with.
#[derive(Clone)]
pub struct Key {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

pub struct Jwks {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    min_interval: Duration,
    state: RwLock<State>,
    fetch: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Key>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

impl Jwks {
    pub fn new(url: String, ttl: Duration, min_interval: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            url,
            http,
            ttl,
            min_interval,
            state: RwLock::new(State::default()),
            fetch: tokio::sync::Mutex::new(()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key for `kid` from the cache only (no network).
    pub fn cached(&self, kid: &str) -> Option<Key> {
        self.state.read().ok()?.keys.get(kid).cloned()
    }

    /// The key for `kid`, re-reading the set when it is stale or lacks `kid` (rate-limited).
    pub async fn key(&self, kid: &str) -> Option<Key> {
        let (hit, fresh) = match self.state.read() {
            Ok(s) => (
                s.keys.get(kid).cloned(),
                s.fetched_at.is_some_and(|t| t.elapsed() < self.ttl),
            ),
            Err(_) => (None, false),
        };
        if let Some(key) = &hit
            && fresh
        {
            return Some(key.clone());
        }
        self.refresh().await;
        self.cached(kid)
    }

    /// Re-read the set unless a fetch was attempted within `min_interval`.
    async fn refresh(&self) {
        let _one_at_a_time = self.fetch.lock().await;
        {
            let Ok(mut s) = self.state.write() else {
                return;
            };
            if s.attempted_at
                .is_some_and(|t| t.elapsed() < self.min_interval)
            {
                return;
            }
            s.attempted_at = Some(Instant::now());
        }
        match self.download().await {
            Ok(keys) => {
                tracing::info!(target: "coursepay::auth", url = %self.url, keys = keys.len(), "signing keys loaded");
                if let Ok(mut s) = self.state.write() {
                    s.keys = keys;
                    s.fetched_at = Some(Instant::now());
                }
            }
            Err(e) => {
                tracing::warn!(target: "coursepay::auth", url = %self.url, error = %e, "signing keys could not be loaded; keeping the known ones");
            }
        }
    }

    async fn download(&self) -> Result<HashMap<String, Key>, String> {
        let resp = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("not a JSON key set: {e}"))?;
        let list = body
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("no \"keys\" array")?;
        Ok(parse_keys(list))
    }
}

/// Usable keys of a JWKS by `kid`: P-256 EC keys for ES256 and RSA keys for RS256. Keys without
/// a `kid`, of another type or curve, meant for encryption, or whose declared `alg` does not
/// match their type are skipped (so no key can be used with an algorithm it was not made for).
pub fn parse_keys(list: &[serde_json::Value]) -> HashMap<String, Key> {
    let mut keys = HashMap::new();
    for value in list {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if value
            .get("use")
            .and_then(|u| u.as_str())
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let (alg, declared_ok) = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => (
                Algorithm::ES256,
                matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::ES256)),
            ),
            AlgorithmParameters::RSA(_) => (
                Algorithm::RS256,
                matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256)),
            ),
            _ => continue,
        };
        if !declared_ok {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, Key { alg, key });
        }
    }
    keys
}
