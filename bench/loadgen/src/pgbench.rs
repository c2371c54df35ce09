//! The machine's limit: the service's two confirm statements (claim, then settle) run by
//! `pgbench` alone, against the same database in the same run as the HTTP phases.
//!
//! The statements are read from the store's source (`crates/store/src/postgres.rs`, constants
//! `CLAIM_ORDER` and `SETTLE`) rather than copied here, so the limit is always that of the SQL
//! the service runs. Their `$n` parameters become pgbench expressions; the orders they claim are
//! inserted beforehand, `orders` rows of the bench course, one per pgbench transaction.

use std::collections::HashMap;
use std::fmt::Write as _;

/// The store source, found from this crate's directory at build time.
pub const STORE_SOURCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../crates/store/src/postgres.rs"
);

/// The text of `const NAME: &str = "...";` in `source`.
pub fn const_str(source: &str, name: &str) -> Option<String> {
    let start = source.find(&format!("const {name}: &str = \""))?;
    let body = &source[start..];
    let open = body.find('"')? + 1;
    let close = body[open..].find("\";")? + open;
    let text = &body[open..close];
    // The constants are plain SQL: a backslash or quote inside would need unescaping.
    (!text.contains('\\') && !text.contains('"')).then(|| text.to_owned())
}

/// Replaces every `$n` in `sql` by `args[n]`; fails on a parameter without a value.
pub fn substitute(sql: &str, args: &HashMap<u32, String>) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len() * 2);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = 0u32;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = n * 10 + d;
                chars.next();
            }
            let v = args
                .get(&n)
                .ok_or_else(|| format!("no pgbench value for parameter ${n}"))?;
            out.push_str(v);
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// This transaction's order: pgbench client `:client_id`, its `:i`-th transaction.
const ORDER: &str = "('pgb-' || :client_id::text || '-' || :i::text)";
const PAYMENT_KEY: &str = "('pgbk-' || :client_id::text || '-' || :i::text)";
const AMOUNT: i64 = 10_000;

/// The pgbench script: claim, then settle, of a fresh order per transaction.
pub fn script(source: &str) -> Result<String, String> {
    let claim = const_str(source, "CLAIM_ORDER").ok_or("CLAIM_ORDER not found")?;
    let settle = const_str(source, "SETTLE").ok_or("SETTLE not found")?;
    let user = format!("md5({ORDER})::uuid");
    let text = |s: &str| format!("'{s}'::text");
    let claim_args: HashMap<u32, String> = [
        (1, ORDER.to_owned()),
        (2, user),
        (3, format!("{AMOUNT}::bigint")),
        (4, PAYMENT_KEY.to_owned()),
        (5, "now()".to_owned()),
        (6, text("pgbench")),
        (7, "NULL::text".to_owned()),
    ]
    .into_iter()
    .collect();
    let settle_args: HashMap<u32, String> = [
        (1, ORDER.to_owned()),
        (2, text(domain::PROVIDER_TOSS)),
        (3, PAYMENT_KEY.to_owned()),
        (4, "gen_random_uuid()".to_owned()),
        (5, "gen_random_uuid()".to_owned()),
        (6, format!("{AMOUNT}::bigint")),
        (7, text("DONE")),
        (8, text("카드")),
        (9, "NULL::text".to_owned()),
        (10, "now()".to_owned()),
        (11, "now()".to_owned()),
        (12, text("pgbench")),
        (13, "NULL::text".to_owned()),
        (14, text("confirm")),
    ]
    .into_iter()
    .collect();
    let mut s = String::from("\\set i :i + 1\n");
    let _ = writeln!(s, "{};", substitute(claim.trim(), &claim_args)?);
    let _ = writeln!(s, "{};", substitute(settle.trim(), &settle_args)?);
    Ok(s)
}

/// The orders the script claims: `clients × per_client` PENDING orders of `course`.
pub fn prepare_sql(course: &str, clients: usize, per_client: usize) -> String {
    format!(
        "INSERT INTO orders (order_id, user_id, course_id, amount, order_name, status,
                             created_at, expires_at, updated_at)
         SELECT o, md5(o)::uuid, '{course}'::uuid, {AMOUNT}, 'pgbench', 'PENDING',
                now(), now() + interval '1 hour', now()
         FROM (SELECT 'pgb-' || c || '-' || i AS o
               FROM generate_series(0, {}) c, generate_series(1, {per_client}) i) AS t",
        clients - 1
    )
}

/// `tps = 3412.5 (without initial connection time)` from pgbench's output.
pub fn parse_tps(output: &str) -> Option<f64> {
    output
        .lines()
        .find(|l| l.starts_with("tps = "))?
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_multi_digit_parameters_whole() {
        let args: HashMap<u32, String> = [(1, "a".to_owned()), (11, "b".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(
            substitute("x = $1 AND y = $11", &args).unwrap(),
            "x = a AND y = b"
        );
        assert!(substitute("$2", &args).unwrap_err().contains("$2"));
    }

    #[test]
    fn the_store_statements_are_found_and_every_parameter_has_a_value() {
        let source = std::fs::read_to_string(STORE_SOURCE).unwrap_or_default();
        let s = script(&source).unwrap();
        assert!(!s.contains('$'), "a parameter left over:\n{s}");
        assert!(s.contains("UPDATE orders"));
        assert!(s.contains("INSERT INTO payments"));
    }

    #[test]
    fn reads_pgbench_tps() {
        let out = "latency average = 4.7 ms\ntps = 3412.518 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(3412.518));
        assert_eq!(parse_tps("nothing"), None);
    }
}
