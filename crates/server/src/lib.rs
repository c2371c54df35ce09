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
pub mod edge;
pub mod error;
pub mod flows;
pub mod http;
pub mod logging;
pub mod ops;
pub mod webhook;

pub use app::App;

/// This build's release: the package version, the git commit it was built from and when
/// (stamped by `build.rs`; `unknown` when built without git).
pub mod build {
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    pub const GIT_COMMIT: &str = env!("COURSEPAY_GIT_COMMIT");
    pub const BUILD_TIME: &str = env!("COURSEPAY_BUILD_TIME");
    /// What `coursepay --version` prints after the program name.
    pub const LONG_VERSION: &str = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("COURSEPAY_GIT_COMMIT"),
        ", built ",
        env!("COURSEPAY_BUILD_TIME"),
        ")"
    );
}
pub use error::Error;

use std::future::Future;

/// Serve `router` on `listener` with the default edge limits until `shutdown` resolves. Tests
/// bind port 0 first, then call this in a task: no sleeping for the server to come up.
/// `coursepay serve` calls [`edge::serve`] with the configured limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    edge::serve(listener, router, config::EdgeLimits::default(), shutdown)
        .await
        .map(|_| ())
}
