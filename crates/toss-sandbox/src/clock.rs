//! The sandbox clock and Toss's timestamp formats.
//!
//! Toss writes `requestedAt`, `approvedAt` and `canceledAt` as ISO-8601 in Korean time with the
//! offset (`2022-01-01T00:00:00+09:00`), a webhook's `createdAt` as
//! `yyyy-MM-dd'T'HH:mm:ss.SSSSSS` in Korean time without an offset, and a virtual account's
//! `dueDate` as `yyyy-MM-dd'T'HH:mm:ss` in Korean time without an offset. All are mirrored
//! here.
//!
//! The clock is wall-clock time plus an offset that `POST /sandbox/clock` moves forward, so
//! expiry windows (10 minutes to confirm) and idempotency retention (15 days) can be crossed in a
//! test without waiting. Only business time moves: anything a receiver checks against its own
//! wall clock (the webhook `X-Timestamp`) keeps real time.

use time::format_description::BorrowedFormatItem;
use time::macros::{format_description, offset};
use time::{Duration, OffsetDateTime, UtcOffset};

/// Korea Standard Time; Toss has no daylight saving time to worry about.
pub(crate) const KST: UtcOffset = offset!(+9);

const ISO_WITH_OFFSET: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
);
const LOCAL: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
const WEBHOOK_CREATED_AT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]");

#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset: Duration,
}

impl Clock {
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc().saturating_add(self.offset)
    }

    pub(crate) fn advance(&mut self, seconds: i64) {
        self.offset = self.offset.saturating_add(Duration::seconds(seconds));
    }
}

/// `2022-01-01T00:00:00+09:00`.
pub(crate) fn iso_kst(t: OffsetDateTime) -> String {
    // Formatting only fails when the value lacks a component the description names; an
    // OffsetDateTime has them all, so the empty fallback is unreachable.
    t.to_offset(KST).format(ISO_WITH_OFFSET).unwrap_or_default()
}

/// `2022-01-01T00:00:00`, Korean time, no offset (a virtual account's `dueDate`).
pub(crate) fn local_kst(t: OffsetDateTime) -> String {
    // Same reasoning as in `iso_kst`: every component is present.
    t.to_offset(KST).format(LOCAL).unwrap_or_default()
}

/// `2022-01-01T00:00:00.000000`, Korean time, no offset (Toss's webhook `createdAt`).
pub(crate) fn webhook_created_at(t: OffsetDateTime) -> String {
    // Same reasoning as in `iso_kst`: every component is present.
    t.to_offset(KST)
        .format(WEBHOOK_CREATED_AT)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_like_toss() {
        let t = datetime!(2024-01-31 15:00:00.123456789 UTC);
        assert_eq!(iso_kst(t), "2024-02-01T00:00:00+09:00");
        assert_eq!(webhook_created_at(t), "2024-02-01T00:00:00.123456");
        assert_eq!(local_kst(t), "2024-02-01T00:00:00");
    }

    #[test]
    fn advancing_moves_now() {
        let mut c = Clock::default();
        let before = c.now();
        c.advance(601);
        assert!(c.now() - before >= Duration::seconds(601));
    }
}
