//! Webhook request authenticity, as pure functions over the raw body bytes (docs/api.md, "Webhooks"):
//!
//! - coursepay's own scheme, used by a signing relay, the sandbox and `coursepay webhook send`:
//!   `X-Timestamp: <unix seconds>` and `X-Signature: v1=<64 lowercase hex>[,v1=…]`, the hex being
//!   HMAC-SHA256(secret, `"<X-Timestamp>.<raw body>"`), the timestamp within ±300 s of `now`;
//! - Toss's scheme for payout/seller events: `tosspayments-webhook-signature: v1:<base64>[,v1:…]`
//!   = HMAC-SHA256(security key, `"<raw body>:<tosspayments-webhook-transmission-time>"`).
//!
//! Both run before any JSON parsing, compare with `hmac`'s constant-time `verify_slice`, and
//! accept a value only if it is exactly well formed: an empty value, uppercase or non-hex digits,
//! a wrong length or an unknown scheme make the whole header invalid instead of being skipped
//! (skipping is how a verifier ends up accepting an empty signature). `now` is a parameter so
//! tests and the benchmark choose the clock.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far X-Timestamp may be from our clock, in either direction.
pub const TOLERANCE_SECS: i64 = 300;
/// More values than this in one header is not a rotation, it is someone fishing.
pub const MAX_VALUES: usize = 8;
const HEX_LEN: usize = 64;
const MAC_LEN: usize = 32;

/// Why a delivery was refused. Only for logs and metrics labels: the client always gets the
/// same 401, so an attacker learns nothing about which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A header is missing, duplicated or not exactly in the documented shape.
    Malformed,
    /// X-Timestamp is more than [`TOLERANCE_SECS`] away from now.
    Stale,
    /// Well formed, but no value matches any active secret.
    Mismatch,
    /// Toss's scheme was used but no `TOSS_WEBHOOK_SECURITY_KEY` is configured.
    NoKey,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::Stale => "stale",
            Invalid::Mismatch => "mismatch",
            Invalid::NoKey => "no_key",
        }
    }
}

/// A signature that verified: the matched value, lowercase hex (the replay guard's token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The signature value that matched.
    pub signature_hex: String,
    /// What the replay guard remembers: SHA-256 of exactly what was signed (timestamp and
    /// body), independent of which secret or which of several signature values matched — so
    /// resending a delivery with another combination of values is still the same delivery.
    pub replay_key: String,
}

/// Hex SHA-256 over `parts` concatenated.
fn digest(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// Parse `X-Signature`: one or more comma-separated `v1=<64 lowercase hex>`. ASCII spaces
/// around a value are allowed; anything else that is not a well-formed `v1=` value rejects the
/// whole header.
pub fn parse_x_signature(value: &str) -> Result<Vec<[u8; MAC_LEN]>, Invalid> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let part = part.trim_matches(' ');
        let hex_part = part.strip_prefix("v1=").ok_or(Invalid::Malformed)?;
        out.push(parse_lower_hex(hex_part).ok_or(Invalid::Malformed)?);
        if out.len() > MAX_VALUES {
            return Err(Invalid::Malformed);
        }
    }
    Ok(out)
}

fn parse_lower_hex(s: &str) -> Option<[u8; MAC_LEN]> {
    if s.len() != HEX_LEN || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; MAC_LEN];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Parse `X-Timestamp`: unix seconds, ASCII digits only (no sign, no spaces, ≤ 12 digits).
pub fn parse_timestamp(value: &str) -> Result<i64, Invalid> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Invalid::Malformed);
    }
    value.parse::<i64>().map_err(|_| Invalid::Malformed)
}

fn mac_over(secret: &[u8], parts: &[&[u8]]) -> Option<HmacSha256> {
    // HMAC takes keys of any length; this cannot fail for HMAC-SHA256.
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    for p in parts {
        mac.update(p);
    }
    Some(mac)
}

/// Verify coursepay's X-Signature scheme. `timestamp` and `signature` are the raw header values
/// (the caller has already refused duplicated headers); `secrets` are the active secrets,
/// current first.
pub fn verify_x_signature(
    timestamp: &str,
    signature: &str,
    body: &[u8],
    secrets: &[&[u8]],
    now_unix: i64,
) -> Result<Accepted, Invalid> {
    let values = parse_x_signature(signature)?;
    let ts = parse_timestamp(timestamp)?;
    if (now_unix - ts).abs() > TOLERANCE_SECS {
        return Err(Invalid::Stale);
    }
    for secret in secrets {
        let Some(mac) = mac_over(secret, &[timestamp.as_bytes(), b".", body]) else {
            continue;
        };
        for v in &values {
            if mac.clone().verify_slice(v).is_ok() {
                return Ok(Accepted {
                    signature_hex: hex::encode(v),
                    replay_key: digest(&[timestamp.as_bytes(), b".", body]),
                });
            }
        }
    }
    Err(Invalid::Mismatch)
}

/// The header values a sender puts on a request: `(X-Timestamp, X-Signature)`.
pub fn sign_x_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> (String, String) {
    let ts = timestamp.to_string();
    let hex = mac_over(secret, &[ts.as_bytes(), b".", body])
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    (ts, format!("v1={hex}"))
}

/// Parse `tosspayments-webhook-signature`: comma-separated `v1:<base64 of 32 bytes>`.
pub fn parse_toss_signature(value: &str) -> Result<Vec<Vec<u8>>, Invalid> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let b64 = part
            .trim_matches(' ')
            .strip_prefix("v1:")
            .ok_or(Invalid::Malformed)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| Invalid::Malformed)?;
        if bytes.len() != MAC_LEN {
            return Err(Invalid::Malformed);
        }
        out.push(bytes);
        if out.len() > MAX_VALUES {
            return Err(Invalid::Malformed);
        }
    }
    Ok(out)
}

/// Verify Toss's payout/seller signature. Toss documents no freshness rule for
/// `transmission-time` (and its retries may repeat it), so none is applied here: such events
/// are deduplicated by transmission id and never trusted beyond "Toss sent this".
pub fn verify_toss_signature(
    signature: &str,
    transmission_time: &str,
    body: &[u8],
    security_key: Option<&[u8]>,
) -> Result<Accepted, Invalid> {
    let values = parse_toss_signature(signature)?;
    if transmission_time.is_empty() {
        return Err(Invalid::Malformed);
    }
    let key = security_key.ok_or(Invalid::NoKey)?;
    let mac = mac_over(key, &[body, b":", transmission_time.as_bytes()]).ok_or(Invalid::NoKey)?;
    for v in &values {
        if mac.clone().verify_slice(v).is_ok() {
            return Ok(Accepted {
                signature_hex: hex::encode(v),
                replay_key: digest(&[body, b":", transmission_time.as_bytes()]),
            });
        }
    }
    Err(Invalid::Mismatch)
}

/// Toss's header value for `body` (tests and the sandbox-free tooling).
pub fn sign_toss(security_key: &[u8], transmission_time: &str, body: &[u8]) -> String {
    let b64 = mac_over(security_key, &[body, b":", transmission_time.as_bytes()])
        .map(|m| base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("v1:{b64}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"coursepay-test-webhook-secret-0123456789";
    const OLD: &[u8] = b"coursepay-old-webhook-secret-0123456789ab";
    const NOW: i64 = 1_800_000_000;
    const BODY: &[u8] = br#"{"eventType":"PAYMENT_STATUS_CHANGED","data":{"paymentKey":"k"}}"#;

    fn signed() -> (String, String) {
        sign_x_signature(SECRET, NOW, BODY)
    }

    #[test]
    fn known_answer_matches_python_hmac() {
        // Same vector as the sandbox's test (computed with Python's hmac module).
        let (_, sig) = sign_x_signature(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn accepts_a_good_signature_and_reports_the_matched_value() {
        let (ts, sig) = signed();
        let ok = verify_x_signature(&ts, &sig, BODY, &[SECRET], NOW).unwrap();
        assert_eq!(format!("v1={}", ok.signature_hex), sig);
    }

    #[test]
    fn tolerance_is_300_seconds_both_ways() {
        let (ts, sig) = signed();
        for now in [NOW - 300, NOW + 300] {
            assert!(verify_x_signature(&ts, &sig, BODY, &[SECRET], now).is_ok());
        }
        for now in [NOW - 301, NOW + 301] {
            assert_eq!(
                verify_x_signature(&ts, &sig, BODY, &[SECRET], now),
                Err(Invalid::Stale)
            );
        }
    }

    #[test]
    fn every_malformed_header_is_refused() {
        let (ts, sig) = signed();
        let hex = sig.strip_prefix("v1=").unwrap();
        let cases: Vec<(String, String)> = vec![
            (ts.clone(), String::new()),
            (ts.clone(), "v1=".into()),
            (ts.clone(), format!("v1={}", &hex[..63])),
            (ts.clone(), format!("v1={hex}0")),
            (ts.clone(), format!("v1={}", hex.to_uppercase())),
            (ts.clone(), format!("v1={}g", &hex[..63])),
            (ts.clone(), format!("v0={hex}")),
            (ts.clone(), hex.to_owned()),
            (ts.clone(), format!("{sig},")),
            (ts.clone(), format!("{sig},v2=abc")),
            (ts.clone(), format!("{sig},v1=")),
            (String::new(), sig.clone()),
            ("abc".into(), sig.clone()),
            (format!("-{ts}"), sig.clone()),
            (format!("+{ts}"), sig.clone()),
            (format!("{ts}.0"), sig.clone()),
        ];
        for (t, s) in cases {
            assert_eq!(
                verify_x_signature(&t, &s, BODY, &[SECRET], NOW),
                Err(Invalid::Malformed),
                "{t:?} {s:?}"
            );
        }
    }

    #[test]
    fn one_matching_value_among_several_is_enough() {
        let (ts, sig) = signed();
        let (_, other) = sign_x_signature(OLD, NOW, BODY);
        let both = format!("{other}, {sig}");
        assert!(verify_x_signature(&ts, &both, BODY, &[SECRET], NOW).is_ok());
        assert_eq!(
            verify_x_signature(&ts, &other, BODY, &[SECRET], NOW),
            Err(Invalid::Mismatch)
        );
        // During a rotation the previous secret is active too.
        assert!(verify_x_signature(&ts, &other, BODY, &[SECRET, OLD], NOW).is_ok());
    }

    #[test]
    fn toss_scheme_round_trips_and_refuses_without_a_key() {
        let time = "2026-11-24T12:00:00+09:00";
        let sig = sign_toss(SECRET, time, BODY);
        let two = format!("{},{sig}", sign_toss(OLD, time, BODY));
        assert!(verify_toss_signature(&two, time, BODY, Some(SECRET)).is_ok());
        assert_eq!(
            verify_toss_signature(&sig, "2026-11-24T12:00:01+09:00", BODY, Some(SECRET)),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify_toss_signature(&sig, time, BODY, None),
            Err(Invalid::NoKey)
        );
        for bad in ["", "v1:", "v1:abc", "v2:AAAA", &sig.replace("v1:", "v1=")] {
            assert_eq!(
                verify_toss_signature(bad, time, BODY, Some(SECRET)),
                Err(Invalid::Malformed),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,300}") {
            let _ = parse_x_signature(&s);
            let _ = parse_timestamp(&s);
            let _ = parse_toss_signature(&s);
            let _ = verify_x_signature(&s, &s, s.as_bytes(), &[SECRET], NOW);
            let _ = verify_toss_signature(&s, &s, s.as_bytes(), Some(SECRET));
        }

        #[test]
        fn shaped_garbage_never_panics(s in "(v1[=:][0-9a-fA-F+/=]{0,70},?){0,10}") {
            let _ = parse_x_signature(&s);
            let _ = parse_toss_signature(&s);
        }

        /// Any change to the timestamp, the body or the signature is refused.
        #[test]
        fn any_mutation_is_rejected(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            ts_delta in -300i64..=300,
            which in 0usize..3,
            pos in any::<usize>(),
            flip in 1u8..=255,
        ) {
            let ts = NOW + ts_delta;
            let (t, s) = sign_x_signature(SECRET, ts, &body);
            prop_assert!(verify_x_signature(&t, &s, &body, &[SECRET], NOW).is_ok());
            let (mut t2, mut s2, mut b2) = (t.clone(), s.clone(), body.clone());
            match which {
                0 => {
                    // Another timestamp (still fresh, so only the MAC can refuse it).
                    let other = ts + if ts_delta > 0 { -1 - (pos % 5) as i64 } else { 1 + (pos % 5) as i64 };
                    t2 = other.to_string();
                }
                1 => {
                    if b2.is_empty() { b2.push(flip) } else { let i = pos % b2.len(); b2[i] ^= flip; }
                }
                _ => {
                    let mut bytes = s2.into_bytes();
                    let i = 3 + pos % 64;
                    let digits = b"0123456789abcdef";
                    let cur = digits.iter().position(|&d| d == bytes[i]).unwrap_or(0);
                    bytes[i] = digits[(cur + 1 + (flip as usize % 15)) % 16];
                    s2 = String::from_utf8(bytes).unwrap();
                }
            }
            prop_assert!((t2.clone(), s2.clone(), b2.clone()) != (t, s, body));
            prop_assert!(verify_x_signature(&t2, &s2, &b2, &[SECRET], NOW).is_err());
        }
    }
}
