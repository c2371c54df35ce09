//! Two build-time facts for the server crate:
//! - the storefront's build output (`web/dist`, committed) embedded into the binary;
//! - the git commit and build time for `/version` and `coursepay --version`
//!   (`COURSEPAY_GIT_COMMIT`, `COURSEPAY_BUILD_TIME`). Nothing is downloaded. Without git or a
//!   `.git` directory (a source tarball, a container build context) both say `unknown`, unless
//!   the builder passes them in the environment under the same names. The stamp reruns only
//!   when HEAD moves or those variables change; the build time is when the commit was last
//!   stamped (or `SOURCE_DATE_EPOCH` for reproducible builds).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn collect(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, base, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
}

/// Embeds the storefront's build output (`web/dist`, committed) so `coursepay serve` shows the
/// shop with no npm step: `$OUT_DIR/web_assets.rs` is a sorted slice of (path, bytes) built from
/// `include_bytes!`. A missing directory embeds nothing (the server then answers 404 at `/`).
fn embed_storefront() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dist = Path::new(&manifest).join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let assets_dir = dist.join("assets");
    println!("cargo:rerun-if-changed={}", assets_dir.display());
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    let mut code = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (rel, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.canonicalize().unwrap_or_else(|_| path.clone())
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    if let Err(e) = std::fs::write(out.join("web_assets.rs"), code) {
        panic!("writing web_assets.rs: {e}");
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Rerun when HEAD or the branch it points at moves. Only existing files are named: cargo
/// treats a missing one as always stale.
fn watch_head() {
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    let git_dir = PathBuf::from(git_dir);
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|| git_dir.clone());
    let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(reference));
    }
    for path in watched.into_iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's civil-from-days).
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The git commit and build time for `/version` and `coursepay --version`.
fn stamp_version() {
    for var in [
        "COURSEPAY_GIT_COMMIT",
        "COURSEPAY_BUILD_TIME",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    watch_head();
    let commit = std::env::var("COURSEPAY_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let built = std::env::var("COURSEPAY_BUILD_TIME")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            let secs = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => v.parse::<i64>().ok()?,
                Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64,
            };
            Some(rfc3339(secs))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=COURSEPAY_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=COURSEPAY_BUILD_TIME={built}");
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    embed_storefront();
    stamp_version();
}
