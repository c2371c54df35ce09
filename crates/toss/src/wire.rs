//! Toss Payments' JSON, field for field (API version 2022-11-16). Public so the sandbox
//! serves exactly the shape the client reads (the client reads a Payment through
//! `PaymentRead`, the part of it coursepay uses); the rest of coursepay sees
//! [`crate::PaymentView`].
//!
//! Decoding is lenient the way Toss's documentation requires: every field Toss documents as
//! optional or nullable accepts both absence and `null` (a real lookup of an EXPIRED payment
//! answers `"useEscrow": null`), and unknown fields are ignored (Toss adds fields over time).
//! A payment that cannot be decoded would read as "outcome unknown" and loop in
//! reconciliation, so only the fields coursepay cannot work without are required:
//! `paymentKey`, `orderId`, `status`, `totalAmount` and `balanceAmount`.

use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// `null` or absent → the type's default. For fields Toss documents as always present but a
/// real answer has been seen to null.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmRequest {
    pub payment_key: String,
    pub order_id: String,
    pub amount: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    pub cancel_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refundable_amount: Option<i64>,
    /// Required by Toss to cancel a virtual-account payment after its deposit: where the money
    /// goes back to. Never allowed in a log line (its `Debug` is redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_receive_account: Option<RefundReceiveAccount>,
}

/// Toss's `refundReceiveAccount`: `{bank, accountNumber, holderName}`. `bank` is a bank code
/// or its Korean name (Toss accepts both); the account number is digits only, at most 20.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RefundReceiveAccount {
    pub bank: String,
    pub account_number: String,
    pub holder_name: String,
}

impl std::fmt::Debug for RefundReceiveAccount {
    // A buyer's bank account is personal data: keep the bank, hide the rest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefundReceiveAccount")
            .field("bank", &self.bank)
            .field("account_number", &"[redacted]")
            .field("holder_name", &"[redacted]")
            .finish()
    }
}

/// Toss's error body: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default, deserialize_with = "null_default")]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    pub payment_key: String,
    #[serde(default, rename = "type", deserialize_with = "null_default")]
    pub kind: String,
    pub order_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub order_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub m_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub currency: String,
    /// A Korean string ("카드", "가상계좌", "간편결제", ...), or its English form ("CARD",
    /// "VIRTUAL_ACCOUNT", ...) when asked with `Accept-Language: en-US`: kept open.
    #[serde(default)]
    pub method: Option<String>,
    pub total_amount: i64,
    pub balance_amount: i64,
    pub status: String,
    #[serde(default)]
    pub requested_at: Option<String>,
    #[serde(default)]
    pub approved_at: Option<String>,
    /// Null on payments that never reached approval (seen on EXPIRED).
    #[serde(default)]
    pub use_escrow: Option<bool>,
    #[serde(default)]
    pub last_transaction_key: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub supplied_amount: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub vat: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub tax_free_amount: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub is_partial_cancelable: bool,
    #[serde(default)]
    pub culture_expense: Option<bool>,
    #[serde(default)]
    pub cancels: Option<Vec<Cancel>>,
    #[serde(default)]
    pub card: Option<serde_json::Value>,
    #[serde(default)]
    pub virtual_account: Option<serde_json::Value>,
    #[serde(default)]
    pub easy_pay: Option<serde_json::Value>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub failure: Option<ErrorBody>,
    #[serde(default)]
    pub receipt: Option<Receipt>,
    #[serde(default)]
    pub country: Option<String>,
}

/// What the client reads of a [`Payment`]: the fields [`crate::PaymentView`] is made of, with
/// the same leniency, borrowed from the answer's bytes where no escape forces a copy. Every
/// other field (card and easy-pay details, receipt, amounts coursepay does not use) is skipped
/// as JSON, checked for syntax but neither decoded nor allocated. A confirm's answer is a
/// couple of kilobytes: decoding all of it (the card details into a JSON tree among them)
/// took about 39 k instructions per confirm, reading this part takes 24 k. `decode_answer` is
/// the only reader; `Payment` stays the full shape the sandbox serves.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaymentRead<'a> {
    #[serde(borrow)]
    pub payment_key: Cow<'a, str>,
    #[serde(borrow)]
    pub order_id: Cow<'a, str>,
    #[serde(borrow)]
    pub status: Cow<'a, str>,
    pub total_amount: i64,
    pub balance_amount: i64,
    #[serde(default, borrow)]
    pub method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub approved_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub secret: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub last_transaction_key: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub cancels: Option<Vec<CancelRead<'a>>>,
    /// Typed as an object with a string `dueDate`; anything else reads as no due date, as it
    /// did when the whole object was kept as untyped JSON.
    #[serde(default, borrow)]
    pub virtual_account: Option<Lenient<VirtualAccountRead<'a>>>,
}

/// A value coursepay can do without: one of another shape reads as absent rather than failing
/// the whole answer (which would leave the payment's outcome unknown).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Lenient<T> {
    Read(T),
    Other(serde::de::IgnoredAny),
}

impl<T> Lenient<T> {
    pub fn read(self) -> Option<T> {
        match self {
            Lenient::Read(t) => Some(t),
            Lenient::Other(_) => None,
        }
    }
}

/// What the client reads of a [`Cancel`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CancelRead<'a> {
    pub cancel_amount: i64,
    #[serde(default, borrow)]
    pub cancel_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub canceled_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub transaction_key: Cow<'a, str>,
}

/// What the client reads of a Payment's `virtualAccount`: when it stops taking deposits.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VirtualAccountRead<'a> {
    #[serde(default, borrow)]
    pub due_date: Option<Lenient<Cow<'a, str>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cancel {
    pub cancel_amount: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub cancel_reason: String,
    #[serde(default)]
    pub canceled_at: Option<String>,
    pub transaction_key: String,
    #[serde(default, deserialize_with = "null_default")]
    pub refundable_amount: i64,
    #[serde(default)]
    pub cancel_status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Receipt {
    #[serde(default, deserialize_with = "null_default")]
    pub url: String,
}

/// PAYMENT_STATUS_CHANGED and friends: `{eventType, createdAt, data}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    pub event_type: String,
    #[serde(default)]
    pub created_at: Option<String>,
    pub data: serde_json::Value,
}

/// Virtual-account DEPOSIT_CALLBACK: `{createdAt, secret, status, transactionKey, orderId}`,
/// no `eventType` and no paymentKey. Sent when the account is issued (WAITING_FOR_DEPOSIT),
/// on deposit (DONE), on cancel (CANCELED) and when a deposit is reversed (back to
/// WAITING_FOR_DEPOSIT).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DepositCallback {
    #[serde(default)]
    pub created_at: Option<String>,
    pub secret: String,
    pub status: String,
    #[serde(default)]
    pub transaction_key: Option<String>,
    pub order_id: String,
}
