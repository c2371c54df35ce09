//! Webhook verification throughput on one core: parse X-Signature + X-Timestamp, check
//! freshness and verify HMAC-SHA256 over a 1 KiB body, with one and with two active secrets
//! (during a rotation, a value signed with the previous secret costs two MACs).
//!
//! `cargo bench -p coursepay-api --bench webhook_verify` — criterion reports elements/s,
//! i.e. verifications per second per core.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flows::webhook_auth::signature::{sign_x_signature, verify_x_signature};
use std::hint::black_box;

const CURRENT: &[u8] = b"coursepay-bench-webhook-secret-0123456789abcdef";
const PREVIOUS: &[u8] = b"coursepay-bench-previous-secret-0123456789abcde";
const NOW: i64 = 1_800_000_000;

fn bench(c: &mut Criterion) {
    let body = vec![b'x'; 1024];
    let (ts, sig) = sign_x_signature(CURRENT, NOW, &body);
    let (ts_prev, sig_prev) = sign_x_signature(PREVIOUS, NOW, &body);
    let mut g = c.benchmark_group("webhook_verify_1KiB");
    g.throughput(Throughput::Elements(1));
    g.bench_function("current_secret", |b| {
        b.iter(|| {
            verify_x_signature(
                black_box(&ts),
                black_box(&sig),
                black_box(&body),
                &[CURRENT, PREVIOUS],
                NOW,
            )
            .is_ok()
        })
    });
    g.bench_function("previous_secret_during_rotation", |b| {
        b.iter(|| {
            verify_x_signature(
                black_box(&ts_prev),
                black_box(&sig_prev),
                black_box(&body),
                &[CURRENT, PREVIOUS],
                NOW,
            )
            .is_ok()
        })
    });
    g.bench_function("forged_rejected", |b| {
        let forged = format!("v1={}", "0".repeat(64));
        b.iter(|| {
            verify_x_signature(
                black_box(&ts),
                black_box(&forged),
                black_box(&body),
                &[CURRENT, PREVIOUS],
                NOW,
            )
            .is_err()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
