//! Tokens as a Supabase project issues them: ES256 and RS256 signed by keys generated here and
//! published as a JWKS over loopback HTTP, key rotation, a storm of forged `kid`s, algorithm
//! confusion, HS256 secret rotation, `nbf`/`iat`/`iss`, and the `sb_secret_` API key, first on
//! the verifier and then end to end through the HTTP API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, spawn_with};
use flows::auth::jwks::Jwks;
use flows::auth::{AuthError, AuthSettings, JwtKeys, Principal};
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const SECRET: &str = "legacy-hs256-secret-at-least-32-bytes-long";

/// A JWKS endpoint on loopback whose key list the test changes, counting every fetch.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    hits: Arc<AtomicUsize>,
    base: String,
}

impl JwksServer {
    async fn start() -> JwksServer {
        let keys: Arc<Mutex<Vec<Value>>> = Arc::default();
        let hits: Arc<AtomicUsize> = Arc::default();
        let (k, h) = (keys.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/auth/v1/.well-known/jwks.json",
            axum::routing::get(move || {
                let (k, h) = (k.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let list = k.lock().unwrap().clone();
                    axum::Json(json!({ "keys": list }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let base = format!("http://{addr}");
        JwksServer {
            url: format!("{base}/auth/v1/.well-known/jwks.json"),
            keys,
            hits,
            base,
        }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn settings(&self) -> AuthSettings {
        AuthSettings {
            supabase_url: Some(self.base.clone()),
            ..Default::default()
        }
    }

    fn issuer(&self) -> String {
        format!("{}/auth/v1", self.base)
    }
}

/// A private key made in this test and its public JWK (with `kid` and `alg`).
struct SigningKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl SigningKey {
    fn es256() -> SigningKey {
        // A P-256 private key is 32 random bytes (below the group order with overwhelming
        // probability), wrapped as PKCS#8 DER without the optional public key.
        let secret: [u8; 32] = rand::random();
        let mut der =
            hex::decode("3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420")
                .unwrap();
        der.extend_from_slice(&secret);
        Self::from_encoding(Algorithm::ES256, EncodingKey::from_ec_der(&der))
    }

    fn rs256() -> SigningKey {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        // RSA key generation is slow in a debug build: one 2048-bit key per test process.
        static DER: OnceLock<Vec<u8>> = OnceLock::new();
        let der = DER.get_or_init(|| {
            let key = rsa::RsaPrivateKey::new(&mut rand_08::thread_rng(), 2048).unwrap();
            key.to_pkcs1_der().unwrap().as_bytes().to_vec()
        });
        Self::from_encoding(Algorithm::RS256, EncodingKey::from_rsa_der(der))
    }

    fn from_encoding(alg: Algorithm, encoding: EncodingKey) -> SigningKey {
        let kid = uuid::Uuid::new_v4().to_string();
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.clone());
        let jwk = serde_json::to_value(&jwk).unwrap();
        SigningKey {
            alg,
            kid,
            encoding,
            jwk,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// Sign with this key but name another key's `kid` and/or another `alg` in the header.
    fn sign_as(&self, alg: Algorithm, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let message = format!("{}.{}", b64(&header), b64(claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{message}.{signature}")
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn user_claims(iss: &str, user: domain::UserId) -> Value {
    json!({
        "iss": iss, "sub": user.to_string(), "aud": "authenticated", "role": "authenticated",
        "iat": now(), "exp": now() + 600, "session_id": "s", "is_anonymous": false
    })
}

fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn secret() -> SecretString {
    SecretString::from(SECRET.to_owned())
}

fn keys_with(jwks: &JwksServer, ttl: Duration, min_interval: Duration) -> JwtKeys {
    JwtKeys::with_jwks(
        &secret(),
        &jwks.settings(),
        Jwks::new(jwks.url.clone(), ttl, min_interval),
    )
}

#[tokio::test]
async fn es256_and_rs256_tokens_verify_against_the_jwks() {
    let server = JwksServer::start().await;
    let (ec, rs) = (SigningKey::es256(), SigningKey::rs256());
    server.publish(&[&ec, &rs]);
    let keys = JwtKeys::from_settings(&secret(), &server.settings());
    let user = domain::UserId::new();
    let claims = user_claims(&server.issuer(), user);

    assert_eq!(
        keys.verify(&ec.sign(&claims)).await,
        Ok(Principal::User(user))
    );
    assert_eq!(
        keys.verify(&rs.sign(&claims)).await,
        Ok(Principal::User(user))
    );
    assert_eq!(server.hits(), 1, "both keys come from one cached fetch");

    // A service-role token signed by a signing key.
    let service = json!({"iss": server.issuer(), "role": "service_role", "exp": now() + 60});
    assert_eq!(
        keys.verify(&ec.sign(&service)).await,
        Ok(Principal::Service)
    );
    // anon is a genuine token that may do nothing here.
    let anon = json!({"iss": server.issuer(), "role": "anon", "exp": now() + 60});
    assert_eq!(
        keys.verify(&rs.sign(&anon)).await,
        Err(AuthError::WrongRole)
    );

    // iss must be the project's.
    for iss in [
        json!("https://other.supabase.co/auth/v1"),
        json!("supabase"),
        Value::Null,
    ] {
        let mut c = claims.clone();
        c["iss"] = iss.clone();
        assert_eq!(
            keys.verify(&ec.sign(&c)).await,
            Err(AuthError::Unauthenticated),
            "iss {iss}"
        );
    }
    // exp, nbf and iat, with a few seconds of leeway.
    for (field, value) in [
        ("exp", now() - 60),
        ("nbf", now() + 60),
        ("iat", now() + 60),
    ] {
        let mut c = claims.clone();
        c[field] = json!(value);
        assert_eq!(
            keys.verify(&rs.sign(&c)).await,
            Err(AuthError::Unauthenticated),
            "{field}"
        );
    }
    let mut c = claims.clone();
    c["nbf"] = json!(now() + 2);
    assert_eq!(
        keys.verify(&rs.sign(&c)).await,
        Ok(Principal::User(user)),
        "within leeway"
    );
    // No exp at all, a wrong audience, a sub that is not a UUID.
    for (field, value) in [
        ("exp", Value::Null),
        ("aud", json!("anon")),
        ("sub", json!("42")),
    ] {
        let mut c = claims.clone();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(field);
        } else {
            c[field] = value;
        }
        assert_eq!(
            keys.verify(&ec.sign(&c)).await,
            Err(AuthError::Unauthenticated),
            "{field}"
        );
    }
    // A key that signed nothing of the project's.
    let stranger = SigningKey::es256();
    assert_eq!(
        keys.verify(&stranger.sign_as(Algorithm::ES256, &ec.kid, &claims))
            .await,
        Err(AuthError::Unauthenticated)
    );
}

#[tokio::test]
async fn rotation_old_and_new_during_the_overlap_old_refused_afterwards() {
    let server = JwksServer::start().await;
    let (old, new) = (SigningKey::es256(), SigningKey::rs256());
    server.publish(&[&old]);
    let keys = keys_with(
        &server,
        Duration::from_millis(400),
        Duration::from_millis(100),
    );
    let user = domain::UserId::new();
    let claims = user_claims(&server.issuer(), user);

    assert_eq!(
        keys.verify(&old.sign(&claims)).await,
        Ok(Principal::User(user))
    );
    // Overlap: the project publishes the new key and starts signing with it. Its unknown kid
    // makes the verifier re-read the set at once.
    server.publish(&[&old, &new]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        keys.verify(&new.sign(&claims)).await,
        Ok(Principal::User(user))
    );
    assert_eq!(
        keys.verify(&old.sign(&claims)).await,
        Ok(Principal::User(user))
    );
    let during = server.hits();
    assert_eq!(during, 2);

    // The old key is revoked: once the cached set expires it is no longer accepted.
    server.publish(&[&new]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        keys.verify(&old.sign(&claims)).await,
        Err(AuthError::Unauthenticated)
    );
    assert_eq!(
        keys.verify(&new.sign(&claims)).await,
        Ok(Principal::User(user))
    );
    assert_eq!(server.hits(), during + 1);
}

#[tokio::test]
async fn a_storm_of_forged_kids_does_not_hammer_the_jwks_endpoint() {
    let server = JwksServer::start().await;
    let real = SigningKey::es256();
    let forger = SigningKey::es256();
    server.publish(&[&real]);
    // The production defaults: one fetch per 10 s at most.
    let keys = JwtKeys::from_settings(&secret(), &server.settings());
    let claims = user_claims(&server.issuer(), domain::UserId::new());
    assert!(keys.verify(&real.sign(&claims)).await.is_ok());
    assert_eq!(server.hits(), 1);

    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let keys = keys.clone();
            let token =
                forger.sign_as(Algorithm::ES256, &uuid::Uuid::new_v4().to_string(), &claims);
            tokio::spawn(async move { keys.verify(&token).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(AuthError::Unauthenticated));
    }
    assert!(
        server.hits() <= 2,
        "500 forged kids caused {} fetches",
        server.hits()
    );
    // Genuine tokens still pass from the cache meanwhile.
    assert!(keys.verify(&real.sign(&claims)).await.is_ok());

    // With a short interval the storm is paced, not amplified: ~1 s of forged kids at a
    // 200 ms interval is at most 1 + 1000/200 fetches, never one per token.
    let paced = keys_with(
        &server,
        Duration::from_secs(600),
        Duration::from_millis(200),
    );
    let before = server.hits();
    let started = std::time::Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(1) {
        let token = forger.sign_as(Algorithm::ES256, &uuid::Uuid::new_v4().to_string(), &claims);
        assert!(paced.verify(&token).await.is_err());
        sent += 1;
    }
    let fetched = server.hits() - before;
    assert!(sent > 50, "only {sent} tokens sent");
    assert!(fetched <= 7, "{sent} forged kids caused {fetched} fetches");
}

#[tokio::test]
async fn no_algorithm_confusion() {
    let server = JwksServer::start().await;
    let (ec, rs) = (SigningKey::es256(), SigningKey::rs256());
    server.publish(&[&ec, &rs]);
    let keys = JwtKeys::from_settings(&secret(), &server.settings());
    let claims = user_claims(&server.issuer(), domain::UserId::new());
    assert!(keys.verify(&ec.sign(&claims)).await.is_ok());

    // HS256 "signed" with a public key as the HMAC secret: HS256 only ever uses JWT_SECRET.
    for public in [&rs.jwk, &ec.jwk] {
        let hmac_key = EncodingKey::from_secret(public.to_string().as_bytes());
        let mut header = Header::new(Algorithm::HS256);
        header.kid = public["kid"].as_str().map(str::to_owned);
        let forged = jsonwebtoken::encode(&header, &claims, &hmac_key).unwrap();
        assert_eq!(keys.verify(&forged).await, Err(AuthError::Unauthenticated));
    }
    // A real signature under the wrong alg for the named key, both ways.
    assert_eq!(
        keys.verify(&rs.sign_as(Algorithm::RS256, &ec.kid, &claims))
            .await,
        Err(AuthError::Unauthenticated)
    );
    assert_eq!(
        keys.verify(&ec.sign_as(Algorithm::ES256, &rs.kid, &claims))
            .await,
        Err(AuthError::Unauthenticated)
    );
    // Other algorithms, none, and ES256 without a kid.
    assert_eq!(
        keys.verify(&rs.sign_as(Algorithm::PS256, &rs.kid, &claims))
            .await,
        Err(AuthError::Unauthenticated)
    );
    let none = "eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
    assert_eq!(keys.verify(none).await, Err(AuthError::Unauthenticated));
    let no_kid =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &ec.encoding).unwrap();
    assert_eq!(keys.verify(&no_kid).await, Err(AuthError::Unauthenticated));

    // A JWKS entry whose declared alg contradicts its key type is never used.
    let mut lying = SigningKey::es256();
    lying.jwk["alg"] = json!("RS256");
    let honest = SigningKey::es256();
    let parsed = flows::auth::jwks::parse_keys(&[lying.jwk.clone(), honest.jwk.clone()]);
    assert!(!parsed.contains_key(&lying.kid) && parsed.contains_key(&honest.kid));
    let mut enc = SigningKey::rs256();
    enc.jwk["use"] = json!("enc");
    assert!(flows::auth::jwks::parse_keys(&[enc.jwk.clone()]).is_empty());
    let _ = KeyAlgorithm::ES256;
}

#[tokio::test]
async fn hs256_legacy_secret_with_rotation_and_the_legacy_service_role_key() {
    let server = JwksServer::start().await;
    let previous = "the-previous-hs256-secret-also-32-bytes-long";
    let settings = AuthSettings {
        jwt_secret_previous: Some(SecretString::from(previous.to_owned())),
        ..server.settings()
    };
    let keys = JwtKeys::from_settings(&secret(), &settings);
    let user = domain::UserId::new();
    let claims = user_claims(&server.issuer(), user);
    assert_eq!(
        keys.verify(&hs256(SECRET, &claims)).await,
        Ok(Principal::User(user))
    );
    assert_eq!(
        keys.verify(&hs256(previous, &claims)).await,
        Ok(Principal::User(user))
    );
    assert_eq!(
        keys.verify(&hs256("a-third-secret-nobody-configured-here", &claims))
            .await,
        Err(AuthError::Unauthenticated)
    );
    // After the rotation ends (no previous secret), its tokens stop working.
    let rotated = JwtKeys::from_settings(&secret(), &server.settings());
    assert_eq!(
        rotated.verify(&hs256(previous, &claims)).await,
        Err(AuthError::Unauthenticated)
    );

    // Supabase's legacy service-role key: iss "supabase", no sub, no aud.
    let service_key = json!({"iss": "supabase", "ref": "abcdefgh", "role": "service_role",
                             "iat": now() - 86_400, "exp": now() + 86_400 * 3650});
    assert_eq!(
        keys.verify(&hs256(SECRET, &service_key)).await,
        Ok(Principal::Service)
    );
    // …but a user token may not claim that issuer when the project URL is known.
    let mut c = claims.clone();
    c["iss"] = json!("supabase");
    assert_eq!(
        keys.verify(&hs256(SECRET, &c)).await,
        Err(AuthError::Unauthenticated)
    );
    // Production without JWT_SECRET: no HS256 token at all, not even with the dev secret.
    let disabled = JwtKeys::from_settings(
        &SecretString::from(flows::config::DEV_JWT_SECRET.to_owned()),
        &AuthSettings {
            hs256_disabled: true,
            ..server.settings()
        },
    );
    assert_eq!(
        disabled.verify(&disabled.mint(None, 60)).await,
        Err(AuthError::Unauthenticated)
    );
}

#[tokio::test]
async fn supabase_secret_api_key_is_an_admin_credential() {
    let key = format!("sb_secret_{}", uuid::Uuid::new_v4().simple());
    let settings = AuthSettings {
        secret_key: Some(SecretString::from(key.clone())),
        ..Default::default()
    };
    let keys = JwtKeys::from_settings(&secret(), &settings);
    assert_eq!(keys.verify(&key).await, Ok(Principal::Service));
    assert_eq!(keys.verify_cached(&key), Ok(Principal::Service));
    let mut wrong = key.clone();
    wrong.pop();
    for bad in [wrong.clone(), format!("{key}x"), "sb_secret_".to_owned()] {
        assert_eq!(
            keys.verify(&bad).await,
            Err(AuthError::Unauthenticated),
            "{bad}"
        );
    }
    // Not configured: no sb_secret_ key is accepted.
    let unset = JwtKeys::new(&secret());
    assert_eq!(unset.verify(&key).await, Err(AuthError::Unauthenticated));
}

#[test]
fn configuration_of_supabase_keys() {
    let get = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let c = flows::config::Config::from_lookup(&get(&[
        ("SUPABASE_URL", "https://abc.supabase.co/"),
        ("SUPABASE_SECRET_KEY", "sb_secret_0123456789abcdef0123"),
        ("JWT_SECRET_PREVIOUS", "old-secret-value-here"),
    ]))
    .unwrap();
    assert_eq!(
        c.auth.jwks_url().as_deref(),
        Some("https://abc.supabase.co/auth/v1/.well-known/jwks.json")
    );
    assert_eq!(
        c.auth.issuer().as_deref(),
        Some("https://abc.supabase.co/auth/v1")
    );
    assert!(
        c.secrets()
            .contains(&"sb_secret_0123456789abcdef0123".to_owned())
    );
    assert!(c.secrets().contains(&"old-secret-value-here".to_owned()));
    let debug = format!("{c:?}");
    assert!(!debug.contains("sb_secret_0123") && !debug.contains("old-secret-value"));

    // Production: signing keys alone are enough (HS256 is then off); neither is refused.
    let prod: &[(&str, &str)] = &[
        ("COURSEPAY_ENV", "production"),
        ("DATABASE_URL", "postgres://u@db/coursepay"),
        ("TOSS_API_BASE", "https://api.tosspayments.com"),
        ("TOSS_SECRET_KEY", "live_sk_abc"),
        ("TOSS_CLIENT_KEY", "live_ck_abc"),
        ("WEBHOOK_SECRET", "0123456789abcdef0123456789abcdef"),
        ("CORS_ALLOWED_ORIGINS", "https://shop.example.com"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let vars: Vec<(&str, &str)> = prod.iter().chain(extra).copied().collect();
        flows::config::Config::from_lookup(&move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    let c = with(&[("SUPABASE_URL", "https://abc.supabase.co")]).unwrap();
    assert!(c.auth.hs256_disabled);
    let err = with(&[]).unwrap_err();
    assert!(err.0.contains("SUPABASE_URL"), "{}", err.0);
    let err = with(&[("SUPABASE_URL", "http://abc.supabase.co")]).unwrap_err();
    assert!(
        err.0.contains("SUPABASE_URL must be an https://"),
        "{}",
        err.0
    );
    let err = with(&[
        ("SUPABASE_URL", "https://abc.supabase.co"),
        (
            "SUPABASE_SECRET_KEY",
            "eyJhbGciOiJIUzI1NiJ9.not-a-secret-key",
        ),
    ])
    .unwrap_err();
    assert!(err.0.contains("SUPABASE_SECRET_KEY"), "{}", err.0);
    assert!(!err.0.contains("eyJhbGci"), "the value is never echoed");
}

#[tokio::test]
async fn http_api_accepts_supabase_tokens_and_the_secret_key() {
    let server = JwksServer::start().await;
    let (ec, rs) = (SigningKey::es256(), SigningKey::rs256());
    server.publish(&[&ec, &rs]);
    let secret_key = format!("sb_secret_{}", uuid::Uuid::new_v4().simple());
    let (base, sk) = (server.base.clone(), secret_key.clone());
    let app = spawn_with(Backend::Sqlite, move |c| {
        c.auth.supabase_url = Some(base);
        c.auth.secret_key = Some(SecretString::from(sk));
    })
    .await;

    // Admin by the secret API key: create a course.
    let r = app
        .post(
            "/v1/admin/courses",
            Some(&secret_key),
            &json!({"title": "Course S", "price": 12000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let course_id = r.body["id"].as_str().unwrap().to_owned();

    // A buyer with an ES256 token, another with RS256: each checks out.
    for key in [&ec, &rs] {
        let user = domain::UserId::new();
        let token = key.sign(&user_claims(&server.issuer(), user));
        let order = app.checkout(&token, &course_id).await;
        assert_eq!(order["amount"], 12000);
        let r = app.get("/v1/me/enrollments", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        // A user token is not an admin.
        let r = app.get("/v1/admin/status", Some(&token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    // Wrong issuer, unknown key, wrong secret key: 401 problem+json.
    let user = domain::UserId::new();
    let mut claims = user_claims(&server.issuer(), user);
    claims["iss"] = json!("https://evil.example/auth/v1");
    let stranger = SigningKey::es256();
    for token in [
        ec.sign(&claims),
        stranger.sign(&user_claims(&server.issuer(), user)),
        format!("{secret_key}0"),
    ] {
        let r = app.get("/v1/me/enrollments", Some(&token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.is_problem() && r.code() == "E_UNAUTHORIZED",
            "{:?}",
            r.body
        );
    }
    // The development HS256 token still works next to the signing keys.
    let r = app.get("/v1/admin/status", Some(&app.admin_token())).await;
    assert_eq!(r.status, StatusCode::OK);
}
