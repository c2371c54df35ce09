//! Bearer-token authentication as Supabase issues tokens.
//!
//! Accepted credentials, each checked without any algorithm confusion (a token's `alg` must be
//! the one its key was made for):
//! * ES256 / RS256 tokens signed by one of the Supabase project's signing keys, published as a
//!   JWKS at `<SUPABASE_URL>/auth/v1/.well-known/jwks.json` (or `SUPABASE_JWKS_URL`) and chosen
//!   by the token's `kid` ([`jwks`]);
//! * HS256 tokens signed with the project's legacy JWT secret (`JWT_SECRET` or
//!   `SUPABASE_JWT_SECRET`), or with `JWT_SECRET_PREVIOUS` during a rotation;
//! * a Supabase secret API key (`SUPABASE_SECRET_KEY`, `sb_secret_…`), which is not a JWT:
//!   compared in constant time, it is an admin credential.
//!
//! A user token (`role: authenticated`, `aud: authenticated`, `sub: <uuid>`) becomes
//! [`Principal::User`]; a `service_role` token becomes [`Principal::Service`], including
//! Supabase's legacy service-role key (no `sub`, no `aud`, `iss: "supabase"`). `exp` is
//! required; `exp`, `nbf` and `iat` are checked with a few seconds of leeway. When the project
//! URL is known, `iss` must be `<SUPABASE_URL>/auth/v1` (only the legacy service-role key,
//! HS256, may carry `iss: "supabase"`). The user id always comes from here, never from a
//! request body.

pub mod jwks;
pub mod verified;

use domain::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    User(UserId),
    Service,
}

impl Principal {
    /// For the event log's "who".
    pub fn actor(&self) -> String {
        match self {
            Principal::User(u) => format!("user:{u}"),
            Principal::Service => "service_role".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, badly signed or expired: 401.
    #[error("invalid or missing token")]
    Unauthenticated,
    /// A valid token whose role may not do this: 403.
    #[error("role not allowed")]
    WrongRole,
}

/// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: u64 = 5;

/// The prefix of Supabase's secret API keys.
pub const SECRET_KEY_PREFIX: &str = "sb_secret_";

/// Token settings beyond `JWT_SECRET` (read with the rest of the configuration).
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `JWT_SECRET_PREVIOUS`: the HS256 secret before a rotation, still accepted.
    pub jwt_secret_previous: Option<SecretString>,
    /// True when no HS256 token is accepted at all (production without `JWT_SECRET`).
    pub hs256_disabled: bool,
    /// `SUPABASE_URL` without a trailing slash.
    pub supabase_url: Option<String>,
    /// `SUPABASE_JWKS_URL` (default: derived from `SUPABASE_URL`).
    pub jwks_url: Option<String>,
    /// `SUPABASE_SECRET_KEY` (`sb_secret_…`): an admin credential.
    pub secret_key: Option<SecretString>,
}

impl AuthSettings {
    /// Read the variables; problems are pushed (naming the variable, never its value).
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
        prod: bool,
        problems: &mut Vec<String>,
    ) -> Self {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let url_ok = |name: &str, u: &str| {
            let https = u.starts_with("https://");
            if !(https || (!prod && u.starts_with("http://"))) {
                Err(format!(
                    "{name} must be an {}URL",
                    if prod { "https:// " } else { "http(s):// " }
                ))
            } else {
                Ok(())
            }
        };
        let supabase_url = var("SUPABASE_URL").map(|u| u.trim_end_matches('/').to_owned());
        if let Some(u) = &supabase_url
            && let Err(e) = url_ok("SUPABASE_URL", u)
        {
            problems.push(e);
        }
        let jwks_url = var("SUPABASE_JWKS_URL");
        if let Some(u) = &jwks_url
            && let Err(e) = url_ok("SUPABASE_JWKS_URL", u)
        {
            problems.push(e);
        }
        let secret_key = var("SUPABASE_SECRET_KEY");
        if let Some(k) = &secret_key
            && (!k.starts_with(SECRET_KEY_PREFIX) || k.len() < SECRET_KEY_PREFIX.len() + 16)
        {
            problems.push(format!(
                "SUPABASE_SECRET_KEY must be a Supabase secret key ({SECRET_KEY_PREFIX}…)"
            ));
        }
        AuthSettings {
            jwt_secret_previous: var("JWT_SECRET_PREVIOUS").map(SecretString::from),
            hs256_disabled: false,
            supabase_url,
            jwks_url,
            secret_key: secret_key.map(SecretString::from),
        }
    }

    /// Where the project's signing keys are published, if anywhere.
    pub fn jwks_url(&self) -> Option<String> {
        self.jwks_url.clone().or_else(|| {
            self.supabase_url
                .as_ref()
                .map(|u| format!("{u}/auth/v1/.well-known/jwks.json"))
        })
    }

    /// The `iss` of the project's tokens, when the project URL is known.
    pub fn issuer(&self) -> Option<String> {
        self.supabase_url.as_ref().map(|u| format!("{u}/auth/v1"))
    }

    /// Secrets held here, for the no-secret-in-logs tests.
    pub fn secrets(&self) -> Vec<String> {
        [&self.jwt_secret_previous, &self.secret_key]
            .into_iter()
            .flatten()
            .map(|s| s.expose_secret().to_owned())
            .collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
}

/// Every key a bearer credential is checked against. Cheap to clone.
#[derive(Clone)]
pub struct JwtKeys(Arc<Keys>);

struct Keys {
    /// HS256 secrets, current first.
    secrets: Vec<DecodingKey>,
    /// The current secret, for [`JwtKeys::mint`] (development and tests).
    encoding: EncodingKey,
    issuer: Option<String>,
    jwks: Option<jwks::Jwks>,
    /// SHA-256 of the secret API key: compared in constant time, whatever the length.
    secret_key_digest: Option<[u8; 32]>,
    /// HS256 tokens these secrets have verified, until their `exp`.
    verified: verified::Verified,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl JwtKeys {
    /// HS256 with one secret only (tools and tests).
    pub fn new(secret: &SecretString) -> Self {
        Self::build(secret, &AuthSettings::default(), None)
    }

    /// Everything the configuration names. The JWKS is fetched lazily, on the first token
    /// signed by one of its keys.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self::from_settings(&config.jwt_secret, &config.auth)
    }

    pub fn from_settings(secret: &SecretString, settings: &AuthSettings) -> Self {
        let jwks = settings
            .jwks_url()
            .map(|url| jwks::Jwks::new(url, jwks::DEFAULT_TTL, jwks::DEFAULT_MIN_INTERVAL));
        Self::build(secret, settings, jwks)
    }

    /// Like [`from_settings`](Self::from_settings) with a key set of one's own (tests choose
    /// its cache times).
    pub fn with_jwks(secret: &SecretString, settings: &AuthSettings, jwks: jwks::Jwks) -> Self {
        Self::build(secret, settings, Some(jwks))
    }

    fn build(secret: &SecretString, settings: &AuthSettings, jwks: Option<jwks::Jwks>) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut secrets = Vec::new();
        if !settings.hs256_disabled {
            secrets.push(DecodingKey::from_secret(bytes));
            if let Some(previous) = &settings.jwt_secret_previous {
                secrets.push(DecodingKey::from_secret(
                    previous.expose_secret().as_bytes(),
                ));
            }
        }
        JwtKeys(Arc::new(Keys {
            secrets,
            encoding: EncodingKey::from_secret(bytes),
            issuer: settings.issuer(),
            jwks,
            secret_key_digest: settings
                .secret_key
                .as_ref()
                .map(|k| digest(k.expose_secret())),
            verified: verified::Verified::default(),
        }))
    }

    /// The signing-key set, if one is configured.
    pub fn jwks(&self) -> Option<&jwks::Jwks> {
        self.0.jwks.as_ref()
    }

    /// Verify a bearer credential (without the "Bearer " prefix). May fetch the project's
    /// signing keys (rate-limited) when the token names a key not yet known.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        match self.classify(token)? {
            Check::Done(p) => Ok(p),
            Check::Hs256(digest) => self.verify_hs256(token, digest),
            Check::Jwks { alg, kid } => {
                let jwks = self.0.jwks.as_ref().ok_or(AuthError::Unauthenticated)?;
                let key = jwks.key(&kid).await.ok_or(AuthError::Unauthenticated)?;
                self.verify_asymmetric(token, alg, &key)
            }
        }
    }

    /// [`verify`](Self::verify) with the keys already cached, never touching the network (the
    /// rate limiter uses it to tell callers apart before a handler runs).
    pub fn verify_cached(&self, token: &str) -> Result<Principal, AuthError> {
        match self.classify(token)? {
            Check::Done(p) => Ok(p),
            Check::Hs256(digest) => self.verify_hs256(token, digest),
            Check::Jwks { alg, kid } => {
                let jwks = self.0.jwks.as_ref().ok_or(AuthError::Unauthenticated)?;
                let key = jwks.cached(&kid).ok_or(AuthError::Unauthenticated)?;
                self.verify_asymmetric(token, alg, &key)
            }
        }
    }

    fn classify(&self, token: &str) -> Result<Check, AuthError> {
        if token.starts_with(SECRET_KEY_PREFIX) {
            let expected = self.0.secret_key_digest.ok_or(AuthError::Unauthenticated)?;
            return if bool::from(digest(token)[..].ct_eq(&expected[..])) {
                Ok(Check::Done(Principal::Service))
            } else {
                Err(AuthError::Unauthenticated)
            };
        }
        let token_digest = verified::digest(token);
        if let Some(principal) = self.0.verified.get(&token_digest, unix_now()) {
            return Ok(Check::Done(principal));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Unauthenticated)?;
        match header.alg {
            Algorithm::HS256 => Ok(Check::Hs256(token_digest)),
            alg @ (Algorithm::ES256 | Algorithm::RS256) => Ok(Check::Jwks {
                alg,
                kid: header.kid.ok_or(AuthError::Unauthenticated)?,
            }),
            _ => Err(AuthError::Unauthenticated),
        }
    }

    fn validation(alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.set_required_spec_claims(&["exp"]);
        // `aud` and `iss` are checked by hand below: Supabase's service-role key has no `aud`
        // and its own `iss`, user tokens have "authenticated".
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        validation
    }

    fn verify_hs256(
        &self,
        token: &str,
        token_digest: verified::TokenDigest,
    ) -> Result<Principal, AuthError> {
        let validation = Self::validation(Algorithm::HS256);
        let claims = self
            .0
            .secrets
            .iter()
            .find_map(|key| jsonwebtoken::decode::<Claims>(token, key, &validation).ok())
            .ok_or(AuthError::Unauthenticated)?
            .claims;
        let exp = claims.exp;
        let principal = self.principal(claims, Algorithm::HS256)?;
        self.0
            .verified
            .insert(token_digest, principal, exp, unix_now());
        Ok(principal)
    }

    fn verify_asymmetric(
        &self,
        token: &str,
        alg: Algorithm,
        key: &jwks::Key,
    ) -> Result<Principal, AuthError> {
        // The key decides the algorithm: an RS256 token naming an EC key's kid (or the other
        // way round) is refused here, before any signature check.
        if key.alg != alg {
            return Err(AuthError::Unauthenticated);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &Self::validation(alg))
            .map_err(|_| AuthError::Unauthenticated)?
            .claims;
        self.principal(claims, alg)
    }

    fn principal(&self, claims: Claims, alg: Algorithm) -> Result<Principal, AuthError> {
        let now = unix_now();
        if claims
            .iat
            .is_some_and(|iat| iat > now + LEEWAY_SECONDS as i64)
        {
            return Err(AuthError::Unauthenticated);
        }
        if let Some(issuer) = &self.0.issuer {
            let legacy_service_key = alg == Algorithm::HS256
                && claims.iss.as_deref() == Some("supabase")
                && claims.role.as_deref() == Some("service_role")
                && claims.sub.is_none();
            if claims.iss.as_deref() != Some(issuer.as_str()) && !legacy_service_key {
                return Err(AuthError::Unauthenticated);
            }
        }
        match claims.role.as_deref() {
            Some("service_role") => Ok(Principal::Service),
            Some("authenticated") => {
                let aud_ok = match &claims.aud {
                    Some(serde_json::Value::String(a)) => a == "authenticated",
                    Some(serde_json::Value::Array(list)) => {
                        list.iter().any(|a| a.as_str() == Some("authenticated"))
                    }
                    _ => false,
                };
                if !aud_ok {
                    return Err(AuthError::Unauthenticated);
                }
                let sub = claims.sub.ok_or(AuthError::Unauthenticated)?;
                UserId::parse(&sub)
                    .map(Principal::User)
                    .map_err(|_| AuthError::Unauthenticated)
            }
            // anon and any other role: a genuine token that may not do this.
            _ => Err(AuthError::WrongRole),
        }
    }

    /// Mint an HS256 token with the current secret (development `coursepay token`, tests).
    /// `user: None` mints a service-role token shaped like Supabase's service-role key.
    pub fn mint(&self, user: Option<UserId>, ttl_seconds: i64) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = match user {
            Some(u) => Claims {
                sub: Some(u.to_string()),
                role: Some("authenticated".into()),
                aud: Some(serde_json::Value::String("authenticated".into())),
                iss: Some(
                    self.0
                        .issuer
                        .clone()
                        .unwrap_or_else(|| "coursepay-dev".into()),
                ),
                exp: now + ttl_seconds,
                iat: Some(now),
            },
            None => Claims {
                sub: None,
                role: Some("service_role".into()),
                aud: None,
                iss: Some("supabase".into()),
                exp: now + ttl_seconds,
                iat: Some(now),
            },
        };
        // HS256 with an in-memory key cannot fail to encode; an empty string would only ever
        // be refused by verify.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .unwrap_or_default()
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

enum Check {
    Done(Principal),
    /// With the token's digest, to remember it once verified.
    Hs256(verified::TokenDigest),
    Jwks {
        alg: Algorithm,
        kid: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> JwtKeys {
        JwtKeys::new(&SecretString::from(s.to_owned()))
    }

    #[test]
    fn user_and_service_tokens() {
        let k = keys("secret-1");
        let u = UserId::new();
        assert_eq!(
            k.verify_cached(&k.mint(Some(u), 60)).unwrap(),
            Principal::User(u)
        );
        assert_eq!(
            k.verify_cached(&k.mint(None, 60)).unwrap(),
            Principal::Service
        );
    }

    #[test]
    fn forged_expired_and_garbage_are_rejected() {
        let k = keys("secret-1");
        let other = keys("secret-2");
        let u = UserId::new();
        assert_eq!(
            k.verify_cached(&other.mint(Some(u), 60)),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(
            k.verify_cached(&k.mint(Some(u), -120)),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(
            k.verify_cached("not.a.jwt"),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(k.verify_cached(""), Err(AuthError::Unauthenticated));
    }

    #[test]
    fn a_verified_token_is_remembered_only_by_its_own_key_set() {
        let k = keys("secret-1");
        let u = UserId::new();
        let token = k.mint(Some(u), 60);
        assert_eq!(k.verify_cached(&token), Ok(Principal::User(u)));
        assert_eq!(
            k.0.verified.get(&verified::digest(&token), unix_now()),
            Some(Principal::User(u))
        );
        assert_eq!(k.verify_cached(&token), Ok(Principal::User(u)));
        // The secret changed: the same token is checked afresh and refused.
        assert_eq!(
            keys("secret-2").verify_cached(&token),
            Err(AuthError::Unauthenticated)
        );
        // A token differing in one byte of its signature is not the remembered one.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(k.verify_cached(&forged), Err(AuthError::Unauthenticated));
        // Refused tokens are never remembered.
        assert_eq!(
            k.0.verified.get(&verified::digest(&forged), unix_now()),
            None
        );
    }

    #[test]
    fn anon_role_is_forbidden_not_unauthenticated() {
        let k = keys("s");
        let claims = Claims {
            sub: None,
            role: Some("anon".into()),
            aud: None,
            iss: Some("supabase".into()),
            exp: time::OffsetDateTime::now_utc().unix_timestamp() + 60,
            iat: None,
        };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.0.encoding).unwrap();
        assert_eq!(k.verify_cached(&t), Err(AuthError::WrongRole));
    }

    #[test]
    fn alg_none_is_rejected() {
        let k = keys("s");
        // {"alg":"none"} . {"role":"service_role","exp":9999999999} . (no signature)
        let t = "eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert_eq!(k.verify_cached(t), Err(AuthError::Unauthenticated));
    }
}
