//! coursepay's HTTP API: the router, middleware, extractors and problem+json rendering, and the
//! edge server that runs them. Each handler parses its input, calls one function of the
//! [`flows`] crate (where the business rules live, with no HTTP dependency) and renders the
//! answer.
//!
//! - [`http`]: router, middleware, extractors, problem+json, the OpenAPI document.
//! - [`edge`]: the connection-level server (limits, timeouts, graceful drain).
//! - [`error`]: the flows' error on its way to problem+json.
//!
//! The flows crate's modules are re-exported here under their own names, so a handler names
//! `crate::flows::confirm`, `crate::config` or `crate::App` the same way the flows do.

pub mod edge;
pub mod error;
pub mod http;

pub use ::flows;
pub use flows::{App, app, auth, config, context, database, logging, ops, webhook_auth};

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
