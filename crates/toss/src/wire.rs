//! Toss Payments' JSON, field for field (API version 2022-11-16). Public so the sandbox
//! serves exactly what the client parses; the rest of coursepay sees [`crate::PaymentView`].
//!
//! Every field Toss may omit or null is `Option` / `#[serde(default)]`: Toss adds fields over
//! time and an unknown one must never break a confirm.

use serde::{Deserialize, Serialize};

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
}

/// Toss's error body: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    #[serde(default)]
    pub version: String,
    pub payment_key: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    pub order_id: String,
    #[serde(default)]
    pub order_name: String,
    #[serde(default)]
    pub m_id: String,
    #[serde(default)]
    pub currency: String,
    /// A Korean string ("카드", "가상계좌", "간편결제", ...): kept open.
    #[serde(default)]
    pub method: Option<String>,
    pub total_amount: i64,
    pub balance_amount: i64,
    pub status: String,
    #[serde(default)]
    pub requested_at: Option<String>,
    #[serde(default)]
    pub approved_at: Option<String>,
    #[serde(default)]
    pub use_escrow: bool,
    #[serde(default)]
    pub last_transaction_key: Option<String>,
    #[serde(default)]
    pub supplied_amount: i64,
    #[serde(default)]
    pub vat: i64,
    #[serde(default)]
    pub tax_free_amount: i64,
    #[serde(default)]
    pub is_partial_cancelable: bool,
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cancel {
    pub cancel_amount: i64,
    #[serde(default)]
    pub cancel_reason: String,
    #[serde(default)]
    pub canceled_at: Option<String>,
    pub transaction_key: String,
    #[serde(default)]
    pub refundable_amount: i64,
    #[serde(default)]
    pub cancel_status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Receipt {
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

/// Virtual-account DEPOSIT_CALLBACK: no paymentKey, a `secret` to compare.
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
