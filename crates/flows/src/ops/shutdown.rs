//! The shutdown switch: SIGTERM/SIGINT flip it once. From then on `/readyz` answers 503 (a
//! load balancer stops sending new work), the edge server stops accepting and lets in-flight
//! requests finish within `SHUTDOWN_GRACE_SECONDS`, and background loops (reconciler, purge)
//! stop at their next safe point — between two orders, never inside one.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

pub struct Shutdown {
    draining: AtomicBool,
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            draining: AtomicBool::new(false),
            tx: watch::channel(false).0,
        }
    }
}

impl Shutdown {
    /// Start draining (idempotent).
    pub fn begin(&self) {
        if !self.draining.swap(true, Ordering::SeqCst) {
            tracing::info!(target: "coursepay::shutdown", "shutdown requested: draining");
        }
        self.tx.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Resolves once [`begin`](Shutdown::begin) was called (at once if it already was).
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // Err: the sender is gone with the App, which also means shutting down.
            let _ = rx.wait_for(|draining| *draining).await;
        }
    }
}

/// The first of SIGTERM (docker, systemd, Kubernetes) or SIGINT (Ctrl-C).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(target: "coursepay::shutdown", signal = "SIGTERM", "signal received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!(target: "coursepay::shutdown", signal = "SIGINT", "signal received"),
                }
                return;
            }
            Err(e) => {
                tracing::warn!(target: "coursepay::shutdown", error = %e, "cannot listen for SIGTERM; only SIGINT stops the server gracefully");
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
