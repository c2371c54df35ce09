//! Integer KRW. Never a float: Toss's amounts are whole won and so are ours.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of Korean won, always ≥ 0. The field is private so every `Money` went through
/// [`Money::new`] and arithmetic is checked (an overflow is a bug, not a wrap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Money(i64);

/// Largest amount coursepay handles: well inside i64 and JSON's safe integer range (2^53), and
/// far above any course price, so a client sending 2^63 gets a clear 400 instead of an overflow.
pub const MAX_KRW: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must not be negative")]
    Negative,
    #[error("amount must be at most {MAX_KRW} KRW")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn new(won: i64) -> Result<Self, MoneyError> {
        if won < 0 {
            Err(MoneyError::Negative)
        } else if won > MAX_KRW {
            Err(MoneyError::TooLarge)
        } else {
            Ok(Money(won))
        }
    }

    pub fn won(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).and_then(|v| Money::new(v).ok())
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).and_then(|v| Money::new(v).ok())
    }
}

impl TryFrom<i64> for Money {
    type Error = MoneyError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        Money::new(v)
    }
}

impl From<Money> for i64 {
    fn from(m: Money) -> i64 {
        m.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} KRW", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_negative_and_huge() {
        assert_eq!(Money::new(-1), Err(MoneyError::Negative));
        assert_eq!(Money::new(MAX_KRW + 1), Err(MoneyError::TooLarge));
        assert_eq!(Money::new(i64::MAX), Err(MoneyError::TooLarge));
        assert_eq!(Money::new(10_000).map(Money::won), Ok(10_000));
    }

    #[test]
    fn arithmetic_is_checked() {
        let max = Money::new(MAX_KRW).unwrap();
        assert_eq!(max.checked_add(Money::new(1).unwrap()), None);
        assert_eq!(Money::ZERO.checked_sub(Money::new(1).unwrap()), None);
        assert_eq!(
            Money::new(300)
                .unwrap()
                .checked_sub(Money::new(100).unwrap()),
            Some(Money::new(200).unwrap())
        );
    }

    #[test]
    fn serde_rejects_out_of_range() {
        assert!(serde_json::from_str::<Money>("-5").is_err());
        assert!(serde_json::from_str::<Money>("9223372036854775807").is_err());
        assert!(serde_json::from_str::<Money>("1.5").is_err());
        assert_eq!(serde_json::from_str::<Money>("100").unwrap().won(), 100);
    }
}
