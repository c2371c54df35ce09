//! The `coursepay` binary as a user meets it: `--help` texts, refusals that say what to do, and
//! the README's list of what production requires, checked against the code. (That every flag
//! has a description is checked on clap's definition: `verify_cli` in src/main.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

fn coursepay(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coursepay"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `serve` lists the whole configuration; the other subcommands only what they read.
#[test]
fn each_subcommand_lists_the_variables_it_reads() {
    let help = |args: &[&str]| text(&coursepay(args, &[]));
    let serve = help(&["serve", "--help"]);
    for name in server_variables() {
        assert!(serve.contains(&name), "serve --help lacks {name}");
    }
    let migrate = help(&["migrate", "--help"]);
    assert!(migrate.contains("DATABASE_URL"), "{migrate}");
    for unused in [
        "TOSS_SECRET_KEY",
        "WEBHOOK_SECRET",
        "JWT_SECRET",
        "CORS_ALLOWED_ORIGINS",
    ] {
        assert!(
            !migrate.contains(unused),
            "migrate --help lists {unused}:\n{migrate}"
        );
    }
    let token = help(&["token", "--help"]);
    assert!(
        token.contains("JWT_SECRET") && token.contains("signed"),
        "{token}"
    );
    assert!(!token.contains("TOSS_SECRET_KEY"), "{token}");
    let top = help(&["--help"]);
    assert!(
        !top.contains("TOSS_SECRET_KEY"),
        "the top-level help repeats the table:\n{top}"
    );
    let sign = help(&["webhook", "sign", "--help"]);
    assert!(
        sign.contains("WEBHOOK_SECRET") && sign.contains("32 bytes"),
        "{sign}"
    );
}

fn server_variables() -> Vec<String> {
    flows::config::VARIABLES
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect()
}

#[test]
fn migrate_reads_only_the_database_settings() {
    // A production environment missing everything the service needs: migrate does not care.
    let dir = std::env::temp_dir().join(format!("coursepay-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("m.db").display());
    let out = coursepay(
        &["migrate"],
        &[("COURSEPAY_ENV", "production"), ("DATABASE_URL", &url)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("migrations applied"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An unreachable database is named by host and port with what to check, never with the
/// password; no "at line N" source positions.
#[test]
fn database_connection_errors_name_host_and_port_not_credentials() {
    // Port 9 (discard) on loopback: nothing listens there.
    let out = coursepay(
        &["migrate"],
        &[(
            "DATABASE_URL",
            "postgres://app:hunter2-secret@127.0.0.1:9/coursepay",
        )],
    );
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("127.0.0.1:9"), "{msg}");
    assert!(msg.contains("Check"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(!msg.contains(" at line "), "{msg}");
}

#[test]
fn token_says_what_it_is_for_in_production() {
    let out = coursepay(
        &["token", "--role", "service_role"],
        &[
            ("COURSEPAY_ENV", "production"),
            ("TOSS_SECRET_KEY", "test_sk_x"),
        ],
    );
    assert!(!out.status.success());
    let msg = text(&out);
    // One explanation, not the service's list of configuration errors.
    assert!(
        msg.contains("JWT_SECRET") && msg.contains("service-role key"),
        "{msg}"
    );
    assert!(
        !msg.contains("DATABASE_URL") && !msg.contains("TOSS_API_BASE"),
        "{msg}"
    );
    let out = coursepay(
        &["token", "--role", "service_role"],
        &[
            ("COURSEPAY_ENV", "production"),
            ("JWT_SECRET", flows::config::DEV_JWT_SECRET),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("development secret"), "{}", text(&out));

    // With the deployment's secret it mints a token that secret verifies.
    let secret = "a-production-jwt-secret-from-the-secret-manager";
    let out = coursepay(
        &["token", "--role", "service_role", "--ttl", "60"],
        &[("COURSEPAY_ENV", "production"), ("JWT_SECRET", secret)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap();
    let keys = flows::auth::JwtKeys::new(&secrecy::SecretString::from(secret.to_owned()));
    assert_eq!(
        keys.verify_cached(token.trim()),
        Ok(flows::auth::Principal::Service)
    );
}

#[test]
fn webhook_sign_refuses_a_secret_the_server_would_refuse() {
    let dir = std::env::temp_dir().join(format!("coursepay-sign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body.json");
    std::fs::write(&file, "{}").unwrap();
    let f = file.to_str().unwrap();
    let out = coursepay(
        &["webhook", "sign", "--file", f, "--secret-env", "K"],
        &[("K", "abc")],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("32 bytes"), "{}", text(&out));
    let out = coursepay(
        &["webhook", "sign", "--file", f, "--secret-env", "K"],
        &[("K", &"k".repeat(32))],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("X-Signature: v1="));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The variable names in the README's production list (between its markers).
fn readme_production_list() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("<!-- production-requirements -->")
        .expect("README marks its production list with <!-- production-requirements -->");
    let end = start
        + readme[start..]
            .find("<!-- /production-requirements -->")
            .expect("and ends it with <!-- /production-requirements -->");
    variable_names(&readme[start..end])
}

/// The variable each item of a Markdown list names first (`- \`NAME\`: …`).
fn variable_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// What production requires, according to the code: the configuration's one table of
/// production requirements, which is also what `serve` checks.
fn code_production_list() -> BTreeSet<String> {
    flows::config::production_requirements()
        .iter()
        .map(|r| r.variable.to_owned())
        .collect()
}

/// Every requirement of that table is enforced: an empty production configuration is refused
/// naming each variable whose requirement an empty value breaks.
#[test]
fn an_empty_production_configuration_names_what_it_lacks() {
    let err = flows::config::Config::from_lookup(&|k| {
        (k == "COURSEPAY_ENV").then(|| "production".to_owned())
    })
    .expect_err("an empty production configuration is refused");
    for var in [
        "DATABASE_URL",
        "TOSS_API_BASE",
        "TOSS_SECRET_KEY",
        "TOSS_CLIENT_KEY",
        "WEBHOOK_SECRET",
        "JWT_SECRET",
        "CORS_ALLOWED_ORIGINS",
    ] {
        assert!(err.0.contains(var), "{var} missing from: {}", err.0);
    }
}

#[test]
fn the_readme_production_list_matches_the_code() {
    let readme = readme_production_list();
    let code = code_production_list();
    assert!(code.len() >= 4, "{code:?}");
    assert_eq!(
        readme, code,
        "README's production list (left) differs from what the configuration refuses (right)"
    );
}
