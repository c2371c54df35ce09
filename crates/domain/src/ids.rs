//! Identifiers. Toss's string ids follow Toss's rules; ours are UUIDs in newtypes so a
//! course id can never be passed where a user id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    pub field: &'static str,
    pub reason: &'static str,
}

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUIDv7 keeps B-tree inserts local).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                Uuid::parse_str(s).map(Self).map_err(|_| ParseError {
                    field: stringify!($name),
                    reason: "must be a UUID",
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A user: Supabase's `auth.users.id`, taken from the JWT `sub`, never from a body.
    UserId
);
uuid_id!(CourseId);
uuid_id!(EnrollmentId);
uuid_id!(PaymentId);
uuid_id!(AttemptId);
uuid_id!(
    /// One refund request; its Toss Idempotency-Key is derived from it.
    RefundId
);

fn toss_id_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An order id as Toss accepts it: 6–64 characters of `A-Z a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = |reason| ParseError {
            field: "orderId",
            reason,
        };
        if s.len() < 6 || s.len() > 64 {
            return Err(err("must be 6 to 64 characters"));
        }
        if !toss_id_chars(s) {
            return Err(err("may contain only A-Z, a-z, 0-9, '-' and '_'"));
        }
        Ok(Self(s.to_owned()))
    }

    /// A new order id: `ord_` + 32 hex digits of a UUIDv7 (36 characters, sortable by time).
    pub fn generate() -> Self {
        Self(format!("ord_{}", Uuid::now_v7().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrderId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        OrderId::parse(&s)
    }
}
impl From<OrderId> for String {
    fn from(o: OrderId) -> String {
        o.0
    }
}
impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Toss's payment key: at most 200 characters. Toss issues URL-safe keys; anything else is
/// refused here so a key can be put in a URL path without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PaymentKey(String);

impl PaymentKey {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = |reason| ParseError {
            field: "paymentKey",
            reason,
        };
        if s.is_empty() || s.len() > 200 {
            return Err(err("must be 1 to 200 characters"));
        }
        if !toss_id_chars(s) {
            return Err(err("may contain only A-Z, a-z, 0-9, '-' and '_'"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PaymentKey {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        PaymentKey::parse(&s)
    }
}
impl From<PaymentKey> for String {
    fn from(k: PaymentKey) -> String {
        k.0
    }
}
impl fmt::Display for PaymentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's `Idempotency-Key` header or one we derive for Toss: 1–300 visible ASCII
/// characters (Toss refuses longer keys with INVALID_IDEMPOTENCY_KEY).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = |reason| ParseError {
            field: "Idempotency-Key",
            reason,
        };
        if s.is_empty() || s.len() > 300 {
            return Err(err("must be 1 to 300 characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("must be visible ASCII"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The key coursepay sends with a Toss confirm. Derived from the order, so every retry for
    /// this order (a lost answer, the reconciler, another instance) replays the first attempt
    /// instead of charging again, and no two orders can ever share one.
    pub fn for_confirm(order: &OrderId) -> Self {
        Self(format!("coursepay-confirm-{}", order.as_str()))
    }

    /// The key for one refund request, derived from its refund id.
    pub fn for_refund(refund_id: &Uuid) -> Self {
        Self(format!("coursepay-refund-{}", refund_id.simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_id_rules() {
        assert!(OrderId::parse("abc12").is_err());
        assert!(OrderId::parse("abc123").is_ok());
        assert!(OrderId::parse(&"a".repeat(64)).is_ok());
        assert!(OrderId::parse(&"a".repeat(65)).is_err());
        for bad in [
            "abc 123",
            "abc/123",
            "abc%2F1",
            "주문번호123",
            "abc123\n",
            "../../x1",
        ] {
            assert!(OrderId::parse(bad).is_err(), "{bad}");
        }
        let g = OrderId::generate();
        assert!(OrderId::parse(g.as_str()).is_ok());
    }

    #[test]
    fn payment_key_rules() {
        assert!(PaymentKey::parse("").is_err());
        assert!(PaymentKey::parse(&"k".repeat(200)).is_ok());
        assert!(PaymentKey::parse(&"k".repeat(201)).is_err());
        assert!(PaymentKey::parse("tgen_2024?x=1").is_err());
    }

    #[test]
    fn idempotency_keys_differ_per_order() {
        let a = IdempotencyKey::for_confirm(&OrderId::parse("order-a1").unwrap());
        let b = IdempotencyKey::for_confirm(&OrderId::parse("order-b1").unwrap());
        assert_ne!(a, b);
        assert!(a.as_str().len() <= 300);
        assert!(IdempotencyKey::parse(&"x".repeat(301)).is_err());
    }
}
