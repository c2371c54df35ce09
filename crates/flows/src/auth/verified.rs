//! HS256 tokens already verified by one key set, so a buyer's next request (checkout, then
//! confirm, then the order page) skips the parse and the HMAC.
//!
//! An entry is keyed by the SHA-256 of the token's bytes: only the very token that was checked
//! finds it, and the cache holds no token. It answers only until the token's `exp` (never
//! within the leeway past it: from `exp` on, the full check decides again), and it lives inside
//! the key set it was verified with, so a new secret starts from nothing. Only successes are
//! kept: a refused token is checked in full every time. Tokens checked against the project's
//! JWKS are not kept: a key the project withdraws must stop its tokens as soon as the set is
//! re-read.

use super::Principal;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept at most. Full, it first drops the expired ones and, if every entry is live,
/// starts again empty: each insert stays O(1) amortized, whatever the number of callers.
pub const CAPACITY: usize = 4096;

/// The cache key of a token.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Default)]
pub struct Verified {
    entries: Mutex<HashMap<TokenDigest, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    principal: Principal,
    /// The token's `exp` (Unix seconds): the entry answers while `now < exp`.
    exp: i64,
}

impl Verified {
    /// The principal a token verified as, if it did and has not expired at `now`.
    pub fn get(&self, token: &TokenDigest, now: i64) -> Option<Principal> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(token)
            .filter(|e| now < e.exp)
            .map(|e| e.principal)
    }

    /// Remember a token that has just passed every check, until its `exp`.
    pub fn insert(&self, token: TokenDigest, principal: Principal, exp: i64, now: i64) {
        if now >= exp {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.retain(|_, e| now < e.exp);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token, Entry { principal, exp });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::UserId;

    #[test]
    fn an_entry_answers_until_exp_and_never_after() {
        let cache = Verified::default();
        let user = Principal::User(UserId::new());
        let token = digest("header.claims.signature");
        cache.insert(token, user, 1_000, 900);
        assert_eq!(cache.get(&token, 900), Some(user));
        assert_eq!(cache.get(&token, 999), Some(user));
        assert_eq!(cache.get(&token, 1_000), None);
        assert_eq!(cache.get(&digest("header.claims.signaturf"), 900), None);
        // A token already past its expiry is not kept at all.
        let late = digest("late");
        cache.insert(late, user, 1_000, 1_000);
        assert_eq!(cache.get(&late, 0), None);
    }

    #[test]
    fn bounded_dropping_expired_entries_first() {
        let cache = Verified::default();
        let user = Principal::User(UserId::new());
        for i in 0..CAPACITY {
            // Half expire at 100, half live until 10_000.
            let exp = if i % 2 == 0 { 100 } else { 10_000 };
            cache.insert(digest(&i.to_string()), user, exp, 50);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.insert(digest("next"), user, 10_000, 200);
        assert_eq!(cache.len(), CAPACITY / 2 + 1);
        assert_eq!(cache.get(&digest("1"), 200), Some(user));
        // Every entry live and the cache full: it starts again rather than grow.
        for i in 0..CAPACITY {
            cache.insert(digest(&format!("live-{i}")), user, 10_000, 200);
        }
        assert!(cache.len() <= CAPACITY);
    }
}
