//! The replay guard: an accepted X-Signature delivery is remembered for [`REPLAY_WINDOW`] and a
//! second use within it is refused (409 `E_WEBHOOK_REPLAYED`). The mark is the digest of what
//! was signed — timestamp and body — not the signature value: during a rotation a delivery
//! carries one value per secret, and resending it with only one of them (or in another order)
//! must still count as the same delivery. The timestamp tolerance is ±300 s, so 10 minutes
//! covers every instant at which a captured request could still pass the freshness check.
//!
//! A delivery whose processing failed is forgotten again ([`ReplayGuard::forget`]), so the
//! sender's retry of the very same request is processed.
//!
//! Backends: the database (`one_time_tokens`, the default; shared by every instance on the same
//! database) or, when `REDIS_URL` is set, Redis (`SET key 1 NX PX 600000`, shared by every
//! instance on the same Redis). Either way a failure of the backend refuses the delivery with a
//! retryable 503 rather than accepting something it could not check.

use crate::error::{Error, Result};
use domain::ErrorCode;
use secrecy::ExposeSecret;
use store::Store;
use time::OffsetDateTime;

pub const REPLAY_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);
/// `one_time_tokens.kind` / Redis key prefix of accepted signatures.
pub const KIND: &str = "webhook-sig";
const REDIS_PREFIX: &str = "coursepay:webhook-sig:";

pub enum ReplayGuard {
    Store,
    Redis {
        client: redis::Client,
        conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    },
    /// REDIS_URL was set but unusable: refuse rather than silently use another backend that
    /// other instances may not share.
    Broken(String),
}

impl ReplayGuard {
    pub fn new(redis_url: Option<&secrecy::SecretString>) -> Self {
        match redis_url {
            None => ReplayGuard::Store,
            Some(url) => match redis::Client::open(url.expose_secret()) {
                Ok(client) => ReplayGuard::Redis {
                    client,
                    conn: tokio::sync::OnceCell::new(),
                },
                // The error text may quote the URL (and its password): not logged.
                Err(_) => ReplayGuard::Broken("REDIS_URL could not be parsed".into()),
            },
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            ReplayGuard::Store => "database",
            ReplayGuard::Redis { .. } => "redis",
            ReplayGuard::Broken(_) => "broken",
        }
    }

    /// True the first time `replay_key` is seen within the window; false for a replay.
    pub async fn first_use(
        &self,
        store: &dyn Store,
        replay_key: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        match self {
            ReplayGuard::Store => Ok(store
                .remember_once(KIND, replay_key, now, now + REPLAY_WINDOW)
                .await?),
            ReplayGuard::Redis { client, conn } => {
                let mut conn = conn
                    .get_or_try_init(|| client.get_connection_manager_with_config(redis_config()))
                    .await
                    .map_err(redis_unavailable)?
                    .clone();
                let set: Option<String> = redis::cmd("SET")
                    .arg(format!("{REDIS_PREFIX}{replay_key}"))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(REPLAY_WINDOW.as_millis() as u64)
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_unavailable)?;
                Ok(set.is_some())
            }
            ReplayGuard::Broken(why) => Err(unavailable(why)),
        }
    }
}

impl ReplayGuard {
    /// Forget an accepted delivery whose processing failed, so its retry is processed. A
    /// failure here is logged: the retry is then refused as a replay until the window ends,
    /// and the reconciler settles the order meanwhile.
    pub async fn forget(&self, store: &dyn Store, replay_key: &str) {
        let result = match self {
            ReplayGuard::Store => store
                .forget_once(KIND, replay_key)
                .await
                .map_err(|e| e.to_string()),
            ReplayGuard::Redis { client, conn } => {
                match conn
                    .get_or_try_init(|| client.get_connection_manager_with_config(redis_config()))
                    .await
                {
                    Ok(conn) => redis::cmd("DEL")
                        .arg(format!("{REDIS_PREFIX}{replay_key}"))
                        .query_async::<i64>(&mut conn.clone())
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("redis {:?}", e.kind())),
                    Err(e) => Err(format!("redis {:?}", e.kind())),
                }
            }
            ReplayGuard::Broken(why) => Err(why.clone()),
        };
        if let Err(cause) = result {
            tracing::warn!(target: "coursepay::webhook", cause = %cause, "could not release the replay mark of a failed delivery");
        }
    }
}

/// A webhook must not hang on a dead Redis: fail fast (Toss retries a 503 later).
fn redis_config() -> redis::aio::ConnectionManagerConfig {
    let t = Some(std::time::Duration::from_secs(2));
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(t)
        .set_response_timeout(t)
        .set_number_of_retries(1)
}

/// Only the error's kind reaches the log: a driver message could quote the URL and its password.
fn redis_unavailable(e: redis::RedisError) -> Error {
    unavailable(format!("redis {:?}", e.kind()))
}

fn unavailable(cause: impl std::fmt::Display) -> Error {
    let mut e = Error::new(ErrorCode::ServiceUnavailable).with_retry_after(5);
    e.internal = Some(format!("replay guard: {cause}"));
    e
}
