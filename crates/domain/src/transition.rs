//! Every status change the store makes, stated once.
//!
//! Each function answers "in this status, what does this event lead to?"; `None` means the
//! event does not apply and the store changes nothing. The SQLite backend decides with these
//! functions in Rust; the PostgreSQL backend states the same rules in its statements' WHERE
//! clauses and CASEs (one statement per operation, seed §5), and the store's conformance suite
//! drives every status through every event on both backends and compares the outcome with
//! these tables, so the two can never drift apart unnoticed.

use crate::Money;
use crate::status::{EnrollmentStatus, OrderStatus, PaymentStatus, RefundStatus};

/// The failure code of an order whose payment went through while another order of the same
/// user for the same course was already CONFIRMING or PAID (money kept, left for an operator).
pub const DUPLICATE_PAYMENT: &str = "DUPLICATE_PAYMENT";

/// What can happen to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderEvent {
    /// One confirm takes the order to ask the provider (claim).
    Claim,
    /// The provider definitely did not charge: the order can be paid again (release).
    Release,
    /// The flow gave up on the order.
    Fail,
    /// Nobody paid in time.
    Expire,
    /// Captured money was recorded for the order (settle). `duplicate`: another order of the
    /// same user for the same course is CONFIRMING or PAID.
    Settle { duplicate: bool },
    /// The order's payment was cancelled down to a zero balance.
    Refund,
    /// The buyer deposited again into a virtual account whose deposit the bank had taken
    /// back (see [`is_redeposit`]).
    Redeposit,
}

impl OrderEvent {
    pub const ALL: &'static [OrderEvent] = &[
        OrderEvent::Claim,
        OrderEvent::Release,
        OrderEvent::Fail,
        OrderEvent::Expire,
        OrderEvent::Settle { duplicate: false },
        OrderEvent::Settle { duplicate: true },
        OrderEvent::Refund,
        OrderEvent::Redeposit,
    ];
}

impl OrderStatus {
    /// The order's status after `event`, or `None` when the event leaves it alone.
    ///
    /// FAILED and EXPIRED are not final for money: a settle still records the payment and
    /// makes the order PAID. PAID stays PAID on a settle (the replay of its own payment), and
    /// a REFUNDED order is never reopened.
    pub fn after(self, event: OrderEvent) -> Option<OrderStatus> {
        use OrderStatus::*;
        match (self, event) {
            (Pending, OrderEvent::Claim) => Some(Confirming),
            (Confirming, OrderEvent::Release) => Some(Pending),
            (Pending | Confirming, OrderEvent::Fail) => Some(Failed),
            (Pending | Confirming, OrderEvent::Expire) => Some(Expired),
            (Refunded, OrderEvent::Settle { .. }) => None,
            (Paid, OrderEvent::Settle { .. }) => Some(Paid),
            (_, OrderEvent::Settle { duplicate: true }) => Some(Failed),
            (_, OrderEvent::Settle { duplicate: false }) => Some(Paid),
            (Paid | Failed, OrderEvent::Refund) => Some(Refunded),
            (Refunded, OrderEvent::Redeposit) => Some(Paid),
            _ => None,
        }
    }
}

impl PaymentStatus {
    /// A recorded payment after a cancellation took its balance down to `balance_left` won
    /// (never called when the balance did not drop: the balance only goes down, so an
    /// out-of-order report can never move a payment backwards). `reported` is the status
    /// Toss gave with it: a deposit the bank took back reads WAITING_FOR_DEPOSIT, and the
    /// payment says so, because the account can take a deposit again ([`is_redeposit`]).
    pub fn after_cancel(self, reported: PaymentStatus, balance_left: i64) -> PaymentStatus {
        match (balance_left, reported) {
            (0, PaymentStatus::WaitingForDeposit) => PaymentStatus::WaitingForDeposit,
            (0, _) => PaymentStatus::Canceled,
            _ => PaymentStatus::PartialCanceled,
        }
    }

    /// Whether a refund may be requested for a payment in this status.
    pub fn is_refundable(self) -> bool {
        matches!(self, PaymentStatus::Done | PaymentStatus::PartialCanceled)
    }
}

/// Whether a settle of a payment that is already recorded is a second deposit rather than a
/// replay: the recorded payment's deposit was reversed (WAITING_FOR_DEPOSIT, nothing left),
/// its order is REFUNDED and Toss reports it captured with a later approval time than the one
/// recorded (a replay, or a lookup answered before the reversal, carries the recorded time).
/// A re-deposit adds the amount to what the payment captured and restores its balance, so
/// captured − balance stays the sum of its refunds (the reversal among them). Not when another
/// order of the buyer holds the course (`duplicate`): that money is left for an operator.
pub fn is_redeposit(
    recorded: PaymentStatus,
    order: OrderStatus,
    duplicate: bool,
    recorded_approved_at: time::OffsetDateTime,
    approved_at: time::OffsetDateTime,
) -> bool {
    recorded == PaymentStatus::WaitingForDeposit
        && order.after(OrderEvent::Redeposit).is_some()
        && !duplicate
        && approved_at > recorded_approved_at
}

/// Which of the cancels a report brings that have no refund row yet become refund rows.
///
/// Toss's balanceAmount is the authority on money; its `cancels[]` only name it. So a
/// payment's DONE refunds may add up to what it captured minus its balance and never more:
/// `room` is what the payment captured, minus the balance after this report, minus the DONE
/// refunds already recorded. A cancel beyond it is money already on record under another key
/// (a bank's reversal recorded under coursepay's own key, then Toss's cancel of that account)
/// or money Toss's balance does not show gone; recording it would refund more than was
/// captured, so it is left out and the caller told. A cancel that fits is always recorded,
/// also when the balance does not drop with it: money the balance shows gone is never left
/// without its row.
///
/// `amounts` come in the order they are offered: the cancel that answers the payment's
/// REQUESTED refund first (coursepay's own request, surely real), then the others newest first
/// (the newest explain the balance just reported). Each is taken if it fits in what is left of
/// `room`, else skipped. Returns one flag per amount: recorded or not.
pub fn cancels_to_record(room: Money, amounts: &[Money]) -> Vec<bool> {
    let mut left = room;
    amounts
        .iter()
        .map(|&amount| match left.checked_sub(amount) {
            Some(rest) if !amount.is_zero() => {
                left = rest;
                true
            }
            _ => false,
        })
        .collect()
}

/// What can happen to an enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnrollmentEvent {
    /// A payment for the course was settled (a refunded enrollment is enrolled again).
    Settle,
    /// The payment behind it was cancelled in full (not for a duplicate payment, whose
    /// enrollment belongs to the first order).
    Refund,
}

impl EnrollmentStatus {
    pub fn after(self, event: EnrollmentEvent) -> Option<EnrollmentStatus> {
        match (self, event) {
            (_, EnrollmentEvent::Settle) => Some(EnrollmentStatus::Enrolled),
            (EnrollmentStatus::Enrolled, EnrollmentEvent::Refund) => {
                Some(EnrollmentStatus::Refunded)
            }
            (EnrollmentStatus::Refunded, EnrollmentEvent::Refund) => None,
        }
    }
}

/// What can happen to a refund request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundEvent {
    /// The provider reported the cancel that answers this request.
    Recorded,
    /// The provider refused the cancel.
    Refused,
}

impl RefundStatus {
    pub fn after(self, event: RefundEvent) -> Option<RefundStatus> {
        match (self, event) {
            (RefundStatus::Requested, RefundEvent::Recorded) => Some(RefundStatus::Done),
            (RefundStatus::Requested, RefundEvent::Refused) => Some(RefundStatus::Failed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_open_orders_can_fail_or_expire() {
        for s in OrderStatus::ALL {
            assert_eq!(s.after(OrderEvent::Fail).is_some(), s.is_open(), "{s}");
            assert_eq!(s.after(OrderEvent::Expire).is_some(), s.is_open(), "{s}");
        }
    }

    #[test]
    fn settle_never_reopens_a_refunded_order_and_never_unpays() {
        for e in [
            OrderEvent::Settle { duplicate: false },
            OrderEvent::Settle { duplicate: true },
        ] {
            assert_eq!(OrderStatus::Refunded.after(e), None);
            assert_eq!(OrderStatus::Paid.after(e), Some(OrderStatus::Paid));
        }
        assert_eq!(
            OrderStatus::Expired.after(OrderEvent::Settle { duplicate: false }),
            Some(OrderStatus::Paid)
        );
    }

    #[test]
    fn a_refund_leaves_no_order_open() {
        for s in OrderStatus::ALL {
            if let Some(to) = s.after(OrderEvent::Refund) {
                assert_eq!(to, OrderStatus::Refunded);
                assert!(!s.is_open(), "{s}: an open order has no payment to refund");
            }
        }
    }

    #[test]
    fn only_a_reversed_deposit_is_deposited_again() {
        let t0 = time::OffsetDateTime::UNIX_EPOCH;
        let later = t0 + time::Duration::minutes(1);
        use PaymentStatus::*;
        assert!(is_redeposit(
            WaitingForDeposit,
            OrderStatus::Refunded,
            false,
            t0,
            later
        ));
        // A replay (same approval), a refund (CANCELED), a paid order, a duplicate: no.
        assert!(!is_redeposit(
            WaitingForDeposit,
            OrderStatus::Refunded,
            false,
            t0,
            t0
        ));
        assert!(!is_redeposit(
            Canceled,
            OrderStatus::Refunded,
            false,
            t0,
            later
        ));
        assert!(!is_redeposit(
            WaitingForDeposit,
            OrderStatus::Paid,
            false,
            t0,
            later
        ));
        assert!(!is_redeposit(
            WaitingForDeposit,
            OrderStatus::Refunded,
            true,
            t0,
            later
        ));
        assert_eq!(Done.after_cancel(WaitingForDeposit, 0), WaitingForDeposit);
        assert_eq!(Done.after_cancel(Canceled, 0), Canceled);
        assert_eq!(Done.after_cancel(PartialCanceled, 5), PartialCanceled);
    }

    #[test]
    fn cancels_fill_only_what_the_balance_shows_gone() {
        let m = |v: i64| Money::new(v).unwrap();
        // Nothing left to explain (a new key for a payment already at zero): nothing recorded.
        assert_eq!(cancels_to_record(Money::ZERO, &[m(10_000)]), [false]);
        // Exactly explained.
        assert_eq!(
            cancels_to_record(m(10_000), &[m(7_000), m(3_000)]),
            [true, true]
        );
        // One that does not fit is skipped; a later one that fits is still taken.
        assert_eq!(
            cancels_to_record(m(3_000), &[m(7_000), m(3_000), m(1)]),
            [false, true, false]
        );
        // First offered, first served.
        assert_eq!(
            cancels_to_record(m(5_000), &[m(5_000), m(5_000)]),
            [true, false]
        );
        assert_eq!(cancels_to_record(m(5), &[m(0)]), [false]);
    }

    #[test]
    fn refund_requests_end_once() {
        for s in RefundStatus::ALL {
            for e in [RefundEvent::Recorded, RefundEvent::Refused] {
                let to = s.after(e);
                assert_eq!(to.is_some(), *s == RefundStatus::Requested, "{s} {e:?}");
            }
        }
    }
}
