//! Bearer-token authentication: HS256 JWTs as Supabase issues them.
//!
//! A user token (`role: authenticated`, `aud: authenticated`, `sub: <uuid>`) becomes
//! [`Principal::User`]; Supabase's service-role key (`role: service_role`, no `sub`, no `aud`)
//! becomes [`Principal::Service`] unchanged. The user id always comes from here, never from a
//! request body.

use domain::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

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

#[derive(Clone)]
pub struct JwtKeys {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        // `aud` is checked by hand below: Supabase's service-role key has none, user tokens have
        // "authenticated".
        validation.validate_aud = false;
        validation.leeway = 5;
        Self {
            decoding: DecodingKey::from_secret(bytes),
            encoding: EncodingKey::from_secret(bytes),
            validation,
        }
    }

    /// Verify a bearer token (without the "Bearer " prefix).
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AuthError::Unauthenticated)?;
        let claims = data.claims;
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

    /// Mint a token (development `coursepay token`, tests). `user: None` mints a service-role
    /// token shaped like Supabase's service-role key.
    pub fn mint(&self, user: Option<UserId>, ttl_seconds: i64) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = match user {
            Some(u) => Claims {
                sub: Some(u.to_string()),
                role: Some("authenticated".into()),
                aud: Some(serde_json::Value::String("authenticated".into())),
                iss: Some("coursepay-dev".into()),
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
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }
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
        assert_eq!(k.verify(&k.mint(Some(u), 60)).unwrap(), Principal::User(u));
        assert_eq!(k.verify(&k.mint(None, 60)).unwrap(), Principal::Service);
    }

    #[test]
    fn forged_expired_and_garbage_are_rejected() {
        let k = keys("secret-1");
        let other = keys("secret-2");
        let u = UserId::new();
        assert_eq!(
            k.verify(&other.mint(Some(u), 60)),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(
            k.verify(&k.mint(Some(u), -120)),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(k.verify("not.a.jwt"), Err(AuthError::Unauthenticated));
        assert_eq!(k.verify(""), Err(AuthError::Unauthenticated));
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
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.encoding).unwrap();
        assert_eq!(k.verify(&t), Err(AuthError::WrongRole));
    }

    #[test]
    fn alg_none_is_rejected() {
        let k = keys("s");
        // {"alg":"none"} . {"role":"service_role","exp":9999999999} . (no signature)
        let t = "eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert_eq!(k.verify(t), Err(AuthError::Unauthenticated));
    }
}
