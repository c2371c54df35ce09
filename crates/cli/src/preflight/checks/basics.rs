//! The first requests: §7 readiness and version, and whether the target is in sandbox mode
//! (which decides what the later sections may send).

use super::{Target, yes};
use crate::preflight::http::Probe;
use crate::preflight::report::{Outcome, Report};

/// §7 readiness and §7 version; learns sandbox mode from `/v1/config`.
pub async fn run(p: &Probe, r: &mut Report, t: &mut Target) -> Result<(), String> {
    r.set("rollback.readiness", readiness(p).await?);
    r.set("rollback.approval_failure", version(p).await?);
    let cfg = p.get("/v1/config", None).await?;
    t.sandbox = yes(&cfg.body["sandbox"]);
    t.client_key = cfg.body["tossClientKey"].as_str().unwrap_or("").to_owned();
    Ok(())
}

async fn readiness(p: &Probe) -> Result<Outcome, String> {
    let health = p.get("/healthz", None).await?;
    let ready = p.get("/readyz", None).await?;
    Ok(Outcome::check(
        health.status == 200 && ready.status == 200,
        format!(
            "GET /healthz → {}; GET /readyz → {}",
            health.brief(),
            ready.brief()
        ),
    ))
}

/// A rollback after approval failures redeploys the previous version: it needs the commit.
async fn version(p: &Probe) -> Result<Outcome, String> {
    let version = p.get("/version", None).await?;
    let commit = version.body["gitCommit"].as_str().unwrap_or("");
    let real = (7..=40).contains(&commit.len()) && commit.chars().all(|c| c.is_ascii_hexdigit());
    Ok(if real {
        Outcome::pass(format!(
            "GET /version → version {}, gitCommit {commit}: the previous version can be redeployed from its commit",
            version.body["version"].as_str().unwrap_or("?")
        ))
    } else {
        Outcome::warn(format!(
            "GET /version → {}, gitCommit {:?}: not a commit; build with the commit recorded so a rollback knows what to redeploy",
            version.brief(),
            commit
        ))
    })
}
