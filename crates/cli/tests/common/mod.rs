//! Shared by the tests that run the real `coursepay` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_coursepay");

/// Spawn `cmd` (a configured `coursepay serve`), wait up to 30 s for the `listening on
/// http://…` line it writes to stderr, and keep draining stderr afterwards so the child never
/// blocks on a full pipe. Returns the child (killed when dropped) and the base URL.
pub async fn spawn_listening(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start coursepay serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("coursepay serve did not start in time")
            .unwrap()
            .expect("coursepay serve exited before listening");
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on ".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}
