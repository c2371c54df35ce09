//! State machines. Each status knows its wire/database spelling and which transitions are
//! allowed, so the store and the flows never compare strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }
        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, UnknownStatus> {
                match s { $($s => Ok($name::$variant),)+ _ => Err(UnknownStatus(s.to_owned())) }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

/// An order's life. PENDING → CONFIRMING (claimed by one confirm) → PAID; CONFIRMING goes back
/// to PENDING only when the provider definitely did not charge. FAILED/EXPIRED are not final
/// for money: if Toss later reports the payment DONE, settle still turns it into PAID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirming,
    Paid,
    Failed,
    Expired,
    Refunded,
}
string_enum!(OrderStatus { Pending => "PENDING", Confirming => "CONFIRMING", Paid => "PAID",
    Failed => "FAILED", Expired => "EXPIRED", Refunded => "REFUNDED" });

impl OrderStatus {
    /// Orders the reconciler and settle-on-read still have to resolve with the provider.
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::Pending | OrderStatus::Confirming)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnrollmentStatus {
    Enrolled,
    Refunded,
}
string_enum!(EnrollmentStatus { Enrolled => "ENROLLED", Refunded => "REFUNDED" });

/// Toss's payment status, as Toss spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Ready,
    InProgress,
    WaitingForDeposit,
    Done,
    Canceled,
    PartialCanceled,
    Aborted,
    Expired,
}
string_enum!(PaymentStatus { Ready => "READY", InProgress => "IN_PROGRESS",
    WaitingForDeposit => "WAITING_FOR_DEPOSIT", Done => "DONE", Canceled => "CANCELED",
    PartialCanceled => "PARTIAL_CANCELED", Aborted => "ABORTED", Expired => "EXPIRED" });

impl PaymentStatus {
    /// How far along Toss's state machine a status is. Webhooks arrive out of order (DONE and
    /// ABORTED 45 ms apart have been seen), so a status only replaces one of lower rank.
    /// DONE outranks ABORTED/EXPIRED: once money moved, a late "aborted" cannot undo it; only a
    /// cancel (rank 4/5) comes after DONE.
    pub fn rank(self) -> u8 {
        match self {
            PaymentStatus::Ready => 0,
            PaymentStatus::InProgress | PaymentStatus::WaitingForDeposit => 1,
            PaymentStatus::Aborted | PaymentStatus::Expired => 2,
            PaymentStatus::Done => 3,
            PaymentStatus::PartialCanceled => 4,
            PaymentStatus::Canceled => 5,
        }
    }

    /// The provider took the money (possibly refunded some since).
    pub fn is_captured(self) -> bool {
        matches!(
            self,
            PaymentStatus::Done | PaymentStatus::PartialCanceled | PaymentStatus::Canceled
        )
    }
}

/// A refund request: REQUESTED is written before Toss is called (so a lost answer is never
/// forgotten), then DONE with Toss's transactionKey or FAILED when Toss refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    Requested,
    Done,
    Failed,
}
string_enum!(RefundStatus { Requested => "REQUESTED", Done => "DONE", Failed => "FAILED" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_spellings() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), *s);
        }
        for s in PaymentStatus::ALL {
            assert_eq!(s.as_str().parse::<PaymentStatus>().unwrap(), *s);
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert!("paid".parse::<OrderStatus>().is_err());
    }

    #[test]
    fn done_outranks_late_abort() {
        assert!(PaymentStatus::Done.rank() > PaymentStatus::Aborted.rank());
        assert!(PaymentStatus::Canceled.rank() > PaymentStatus::Done.rank());
    }
}
