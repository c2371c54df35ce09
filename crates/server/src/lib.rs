//! coursepay's service: flows (plain async functions over a [`Store`](store::Store) and the Toss
//! client), the HTTP layer that exposes them, and the operational pieces around them.
//!
//! - [`flows`]: checkout, confirm, settle/resolve, enrollments — callable without HTTP.
//! - [`http`]: router, middleware, extractors, problem+json.
//! - [`context`], [`logging`]: the per-request context and the JSON log lines.
//! - [`config`], [`auth`]: environment configuration and JWT verification.
//! - [`database`]: opening the store (migrate, or only verify the migrations).
//! - [`ops`]: metrics and alerts.
//! - [`webhook`]: webhook signatures, the replay guard and the invalid-signature throttle.

pub mod app;
pub mod auth;
pub mod config;
pub mod context;
pub mod database;
pub mod error;
pub mod flows;
pub mod http;
pub mod logging;
pub mod ops;
pub mod webhook;

pub use app::App;
pub use error::Error;

use std::future::Future;

/// Serve `router` on `listener` until `shutdown` resolves. Tests bind port 0 first, then call
/// this in a task: no sleeping for the server to come up.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
