//! Toss's `Idempotency-Key`, as its idempotency guide describes it.
//!
//! Mirrored: a key is at most 300 characters (else 400 `INVALID_IDEMPOTENCY_KEY`); it is
//! matched on key + API key + URL path + method and *not* on the body, so a reused key replays
//! another request's answer; the first answer (status and body, errors included) is replayed
//! without executing again; a repeat while the first is still running gets 409
//! `IDEMPOTENT_REQUEST_PROCESSING`; keys are kept 15 days (of sandbox time); GETs ignore it.
//!
//! Errors are first answers like any other: a `TossPayments-Test-Code` error, a refusal and a
//! 5xx (injected before or after processing) are stored and replayed for the key's lifetime.
//! Toss's guide warns against changing the key after an error; a client must therefore
//! recover from an error by looking the payment up, and use a new key only once the lookup
//! shows the first request did not take effect.
//!
//! Sandbox choices: an empty key is invalid like an over-long one; answers given before the
//! key is looked at (auth failures, an invalid key, a dropped connection before processing,
//! a caller that went away mid-wait) are not stored: those requests never got past Toss's
//! front door.

use crate::api::Answer;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

pub(crate) const MAX_KEY_CHARS: usize = 300;
pub(crate) const RETENTION: Duration = Duration::days(15);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Scope {
    pub(crate) key: String,
    pub(crate) api_key: String,
    pub(crate) path: String,
    pub(crate) method: String,
}

#[derive(Debug)]
enum Entry {
    Running,
    Done {
        answer: Answer,
        stored_at: OffsetDateTime,
    },
}

pub(crate) enum Begin {
    /// The caller now owns the key and must `finish` or `abandon` it.
    Claimed,
    Running,
    Replay(Answer),
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    entries: HashMap<Scope, Entry>,
    /// At most the `stored_at` of every stored answer (None: none stored), so `purge`, which
    /// runs on every request, only walks the entries when one may have expired.
    oldest: Option<OffsetDateTime>,
}

impl Store {
    pub(crate) fn begin(&mut self, scope: &Scope, now: OffsetDateTime) -> Begin {
        match self.entries.get(scope) {
            Some(Entry::Running) => Begin::Running,
            Some(Entry::Done { answer, stored_at }) if now - *stored_at <= RETENTION => {
                Begin::Replay(answer.clone())
            }
            _ => {
                self.entries.insert(scope.clone(), Entry::Running);
                Begin::Claimed
            }
        }
    }

    pub(crate) fn finish(&mut self, scope: Scope, answer: Answer, now: OffsetDateTime) {
        self.oldest = Some(self.oldest.map_or(now, |t| t.min(now)));
        self.entries.insert(
            scope,
            Entry::Done {
                answer,
                stored_at: now,
            },
        );
    }

    /// Releases a claim whose request never executed.
    pub(crate) fn abandon(&mut self, scope: &Scope) {
        if matches!(self.entries.get(scope), Some(Entry::Running)) {
            self.entries.remove(scope);
        }
    }

    pub(crate) fn purge(&mut self, now: OffsetDateTime) {
        if self.oldest.is_none_or(|t| now - t <= RETENTION) {
            return;
        }
        self.entries.retain(|_, e| match e {
            Entry::Running => true,
            Entry::Done { stored_at, .. } => now - *stored_at <= RETENTION,
        });
        self.oldest = self
            .entries
            .values()
            .filter_map(|e| match e {
                Entry::Running => None,
                Entry::Done { stored_at, .. } => Some(*stored_at),
            })
            .min();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn scope(key: &str) -> Scope {
        Scope {
            key: key.into(),
            api_key: "test_sk_a".into(),
            path: "/v1/payments/confirm".into(),
            method: "POST".into(),
        }
    }

    /// Purging drops exactly the answers past retention, however often it runs, and keeps
    /// dropping the later ones when their time comes.
    #[test]
    fn purge_drops_each_answer_when_its_retention_ends() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut store = Store::default();
        let answer = || Answer::new(StatusCode::OK, b"{}".to_vec());
        store.finish(scope("b"), answer(), t0 + Duration::days(5));
        store.finish(scope("a"), answer(), t0);
        assert!(matches!(store.begin(&scope("running"), t0), Begin::Claimed));
        store.purge(t0 + RETENTION);
        assert_eq!(store.entries.len(), 3);
        store.purge(t0 + RETENTION + Duration::seconds(1));
        assert_eq!(store.entries.len(), 2, "a is gone");
        assert!(store.entries.contains_key(&scope("b")));
        store.purge(t0 + Duration::days(5) + RETENTION + Duration::seconds(1));
        assert_eq!(store.entries.len(), 1, "only the running claim is left");
        assert!(store.entries.contains_key(&scope("running")));
    }

    #[test]
    fn claim_replay_and_expiry() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut store = Store::default();
        assert!(matches!(store.begin(&scope("k"), now), Begin::Claimed));
        assert!(matches!(store.begin(&scope("k"), now), Begin::Running));
        let answer = Answer::new(StatusCode::OK, b"{}".to_vec());
        store.finish(scope("k"), answer, now);
        assert!(matches!(
            store.begin(&scope("k"), now + RETENTION),
            Begin::Replay(_)
        ));
        store.purge(now + RETENTION + Duration::seconds(1));
        assert!(matches!(
            store.begin(&scope("k"), now + RETENTION + Duration::seconds(1)),
            Begin::Claimed
        ));
    }

    #[test]
    fn abandon_only_releases_running_claims() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut store = Store::default();
        store.begin(&scope("a"), now);
        store.abandon(&scope("a"));
        assert!(matches!(store.begin(&scope("a"), now), Begin::Claimed));
        store.finish(scope("a"), Answer::new(StatusCode::OK, Vec::new()), now);
        store.abandon(&scope("a"));
        assert!(matches!(store.begin(&scope("a"), now), Begin::Replay(_)));
    }
}
