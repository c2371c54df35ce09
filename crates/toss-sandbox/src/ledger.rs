//! The payments the sandbox knows and the state machine Toss documents for them.
//!
//! Mirrored from Toss's Payment object and confirm/cancel references:
//! - statuses IN_PROGRESS (buyer authenticated, awaiting confirm) → DONE | ABORTED | EXPIRED,
//!   DONE → PARTIAL_CANCELED → CANCELED; `totalAmount` never changes, `balanceAmount` drops
//!   with each cancel, each cancel appends to `cancels[]` with the balance left after it as its
//!   `refundableAmount`;
//! - confirm within 10 minutes of authentication, else 404 `NOT_FOUND_PAYMENT_SESSION` and the
//!   payment becomes EXPIRED; card minimum 100 won (`BELOW_MINIMUM_AMOUNT`); a second confirm
//!   of a processed payment is 400 `ALREADY_PROCESSED_PAYMENT`, not a replay;
//! - cancel errors `ALREADY_CANCELED_PAYMENT`, `NOT_CANCELABLE_PAYMENT`,
//!   `NOT_MATCHES_REFUNDABLE_AMOUNT`, `NOT_CANCELABLE_AMOUNT`; `cancelReason` ≤ 200 chars;
//! - a DONE card payment: `method` "카드", a `card` object, `approvedAt` with the +09:00 offset,
//!   `lastTransactionKey`, `receipt.url`, `secret` null, `mId` "tosspayments", `type` NORMAL,
//!   VAT as 1/11 of the amount rounded, version 2022-11-16;
//! - virtual accounts (`method: "VIRTUAL_ACCOUNT"` at creation): confirm answers
//!   WAITING_FOR_DEPOSIT with method "가상계좌", a `virtualAccount` object (its `dueDate` in
//!   Korean time *without* an offset, `2024-02-20T21:00:27`) and a `secret`; the deposit
//!   (`POST /sandbox/payments/{paymentKey}/deposit`, the buyer wiring the money) makes it DONE;
//!   a reversed deposit (`POST /sandbox/payments/{paymentKey}/reverse-deposit`, the bank taking
//!   the money back) makes it WAITING_FOR_DEPOSIT again, and a second deposit to the same
//!   account makes it DONE again. A deposit to a closed account (CANCELED) or after its
//!   `dueDate` is refused (400 `INVALID_REQUEST` on the control route: the bank turns the
//!   transfer away, Toss never sees it). DEPOSIT_CALLBACK goes out when the
//!   account is issued, on deposit, on cancel and on reversal; PAYMENT_STATUS_CHANGED as well
//!   for every change but the issue (the sandbox behaves as if both events are registered);
//! - virtual-account cancels: before the deposit only a full cancel is allowed — it closes the
//!   account (`virtualAccount.expired: true`, status CANCELED) — and a partial one is 403
//!   `NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT`; after the deposit the cancel must carry
//!   `refundReceiveAccount {bank, accountNumber, holderName}` (the money goes back by bank
//!   transfer), else 400 `INVALID_REQUEST` naming the field;
//! - READY payments (the window opened, nothing authenticated; `"status": "READY"` at
//!   creation) expire 30 minutes after creation, with a PAYMENT_STATUS_CHANGED; an expired
//!   payment reads `useEscrow: null`, `failure: {"code": "EXPIRED_PAYMENT", ...}` like a real
//!   lookup of one;
//! - `suppliedAmount` and `vat` describe what is left after cancels (the split of
//!   `balanceAmount`), as in Toss's cancel example; the field is `cultureExpense`;
//! - with `Accept-Language: en-US` Toss translates field *values* too (`method: "CARD"`,
//!   `card.cardType: "CREDIT"`, `virtualAccount.accountType: "NORMAL"`), not only error
//!   messages; the sandbox stores Korean and translates when it answers.
//!
//! Where Toss is silent the sandbox chooses:
//! - checks run in this order: request shape, `BELOW_MINIMUM_AMOUNT`, unknown payment,
//!   expired session, already processed, orderId mismatch, amount mismatch (both 400
//!   `INVALID_REQUEST`, see `codes`), another approved payment for the orderId (400
//!   `DUPLICATED_ORDER_ID`, and this one stays IN_PROGRESS), the forced `outcome`;
//! - confirming an ABORTED payment answers `ALREADY_PROCESSED_PAYMENT` like a DONE one;
//! - a payment created with an `outcome` code becomes ABORTED with `failure` = that code and its
//!   Korean message when confirmed;
//! - expiry is applied whenever the sandbox is touched (lazily), not on a timer; `EXPIRED` is
//!   reported once, when it is first applied;
//! - a new payment for an orderId that only has unpaid payments replaces them for
//!   `/v1/payments/orders/{orderId}`, but an approved payment always wins that lookup;
//! - creating a payment for an orderId that already has a DONE, PARTIAL_CANCELED or CANCELED
//!   payment is 400 `DUPLICATED_ORDER_ID` (Toss's wording for a reused, approved orderId);
//! - key formats: `paymentKey` is `tsbx_` + 32 hex digits (recognisably fake, within Toss's
//!   200 characters), transaction keys are 32 uppercase hex digits like Toss's examples;
//! - every approval uses the same masked test card and a random 8-digit `approveNo`;
//! - `receipt.url` points at the reserved `.invalid` domain: there is no receipt to show;
//! - a refund account is checked for shape only (no bank is asked whether the account exists),
//!   with the cancel codes of Toss's error-code reference: an empty `bank` is 400
//!   `INVALID_BANK`, an `accountNumber` that is not 1–20 digits 400
//!   `INVALID_REFUND_ACCOUNT_NUMBER`, a `holderName` that is not 1–60 characters 400
//!   `INVALID_REFUND_ACCOUNT_INFO` (documented as "the account number and holder name do not
//!   match", the nearest a shape check gets); sending one for a card payment, or before the
//!   deposit, is 400 `INVALID_REQUEST` naming the field (Toss is silent; the stricter reading
//!   of "virtual accounts only");
//! - confirming a READY payment answers 404 `NOT_FOUND_PAYMENT_SESSION` (nothing was
//!   authenticated; Toss is silent);
//! - a reversal is only possible for a deposited payment with no cancels;
//! - over HTTP the Payment also carries the fields Toss always sends but the wire type does not
//!   model (`taxExemptionAmount`, `discount`, `cashReceipt`, ...), null or zero, so a strict
//!   parser is exercised too.

use crate::clock::{iso_kst, local_kst};
use crate::codes::{Lang, SandboxError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};
use toss::wire::{Cancel, CancelRequest, ConfirmRequest, ErrorBody, Payment, Receipt};

/// How long an issued virtual account waits for its deposit (its `dueDate`). Toss lets the
/// merchant choose; the sandbox issues 7-day accounts.
const VIRTUAL_ACCOUNT_DAYS: i64 = 7;

/// Toss: confirm within 10 minutes of the buyer authenticating.
pub(crate) const CONFIRM_WINDOW: Duration = Duration::minutes(10);
/// Toss: the payment window (a READY payment) lives 30 minutes.
pub(crate) const READY_WINDOW: Duration = Duration::minutes(30);
const MAX_ACCOUNT_NUMBER_DIGITS: usize = 20;
const MAX_HOLDER_NAME_CHARS: usize = 60;
const MIN_CARD_AMOUNT: i64 = 100;
const MAX_CANCEL_REASON_CHARS: usize = 200;
const MAX_ORDER_NAME_CHARS: usize = 100;
const MAX_PAYMENT_KEY_CHARS: usize = 200;

/// Body of `POST /sandbox/payments`: what a buyer finishing the payment window produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePayment {
    pub order_id: String,
    pub amount: i64,
    #[serde(default)]
    pub order_name: Option<String>,
    /// `"approve"` (the default) or a Toss error code the later confirm fails with.
    #[serde(default)]
    pub outcome: Option<String>,
    /// `"CARD"` (the default) or `"VIRTUAL_ACCOUNT"`.
    #[serde(default)]
    pub method: Option<String>,
    /// `"IN_PROGRESS"` (the default: the buyer authenticated) or `"READY"` (the window is open,
    /// nothing authenticated yet: it expires after 30 minutes).
    #[serde(default)]
    pub status: Option<String>,
}

impl CreatePayment {
    pub fn new(order_id: impl Into<String>, amount: i64) -> Self {
        CreatePayment {
            order_id: order_id.into(),
            amount,
            order_name: None,
            outcome: None,
            method: None,
            status: None,
        }
    }
}

struct Record {
    payment: Payment,
    authenticated_at: OffsetDateTime,
    /// The error code confirm must fail with; `None` approves.
    forced_failure: Option<String>,
    /// Confirm waits for a deposit instead of approving.
    virtual_account: bool,
    /// The issued account's `dueDate`: no deposit is taken after it.
    deposit_due: Option<OffsetDateTime>,
}

#[derive(Default)]
pub(crate) struct Ledger {
    records: Vec<Record>,
    by_key: HashMap<String, usize>,
    /// Every payment ever created for an orderId, oldest first.
    by_order: HashMap<String, Vec<usize>>,
    /// Snapshots of payments whose status changed, for webhooks.
    changed: Vec<Payment>,
    /// Snapshots of virtual-account payments whose DEPOSIT_CALLBACK is due (issue, deposit,
    /// cancel, reversal).
    deposit_events: Vec<Payment>,
    /// At most the `authenticated_at` of every payment that may still expire (None: none
    /// may). Every request applies expiry first; this lets it skip the walk over all payments
    /// while none can be due, which kept a confirm's cost growing with the ledger's size.
    open_since: Option<OffsetDateTime>,
}

pub(crate) fn valid_order_id(s: &str) -> bool {
    (6..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_paid(status: &str) -> bool {
    matches!(status, "DONE" | "PARTIAL_CANCELED" | "CANCELED")
}

fn transaction_key() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()
}

fn bad_order_id() -> SandboxError {
    SandboxError::invalid(
        "orderId는 영문 대소문자, 숫자, 특수문자(-, _)만 허용합니다. 6자 이상 64자 이하여야 합니다.",
        "orderId allows only letters, digits, '-' and '_', 6 to 64 characters.",
    )
}

/// A creation request that passed its checks.
struct NewPayment {
    order_id: String,
    order_name: String,
    amount: i64,
    /// IN_PROGRESS or READY.
    status: &'static str,
    forced_failure: Option<String>,
    virtual_account: bool,
}

impl NewPayment {
    fn checked(req: CreatePayment) -> Result<NewPayment, SandboxError> {
        if !valid_order_id(&req.order_id) {
            return Err(bad_order_id());
        }
        if req.amount < 1 {
            return Err(SandboxError::invalid(
                "amount는 1 이상의 정수여야 합니다.",
                "amount must be an integer of at least 1.",
            ));
        }
        let order_name = match req.order_name {
            Some(name) if name.trim().is_empty() || name.chars().count() > MAX_ORDER_NAME_CHARS => {
                return Err(SandboxError::invalid(
                    "orderName은 1자 이상 100자 이하여야 합니다.",
                    "orderName must be 1 to 100 characters.",
                ));
            }
            Some(name) => name,
            None => "샌드박스 주문".to_owned(),
        };
        let forced_failure = match req.outcome.as_deref() {
            None | Some("approve") => None,
            Some(code) if is_code_shaped(code) => Some(code.to_owned()),
            Some(_) => {
                return Err(SandboxError::invalid(
                    "outcome은 approve 또는 토스페이먼츠 에러 코드여야 합니다.",
                    "outcome must be \"approve\" or a Toss error code.",
                ));
            }
        };
        let virtual_account = match req.method.as_deref() {
            None | Some("CARD") => false,
            Some("VIRTUAL_ACCOUNT") => true,
            Some(_) => {
                return Err(SandboxError::invalid(
                    "method는 CARD 또는 VIRTUAL_ACCOUNT여야 합니다.",
                    "method must be CARD or VIRTUAL_ACCOUNT.",
                ));
            }
        };
        let status = match req.status.as_deref() {
            None | Some("IN_PROGRESS") => "IN_PROGRESS",
            Some("READY") => "READY",
            Some(_) => {
                return Err(SandboxError::invalid(
                    "status는 IN_PROGRESS 또는 READY여야 합니다.",
                    "status must be IN_PROGRESS or READY.",
                ));
            }
        };
        Ok(NewPayment {
            order_id: req.order_id,
            order_name,
            amount: req.amount,
            status,
            forced_failure,
            virtual_account,
        })
    }

    /// The Payment object as Toss shows it before the confirm.
    fn payment(&self, now: OffsetDateTime) -> Payment {
        let (supplied, vat) = split_vat(self.amount);
        Payment {
            version: "2022-11-16".into(),
            payment_key: format!("tsbx_{}", uuid::Uuid::new_v4().simple()),
            kind: "NORMAL".into(),
            order_id: self.order_id.clone(),
            order_name: self.order_name.clone(),
            m_id: "tosspayments".into(),
            currency: "KRW".into(),
            method: Some("카드".into()),
            total_amount: self.amount,
            balance_amount: self.amount,
            status: self.status.into(),
            requested_at: Some(iso_kst(now)),
            approved_at: None,
            use_escrow: Some(false),
            last_transaction_key: None,
            supplied_amount: supplied,
            vat,
            tax_free_amount: 0,
            is_partial_cancelable: true,
            culture_expense: Some(false),
            cancels: None,
            card: None,
            virtual_account: None,
            easy_pay: None,
            secret: None,
            failure: None,
            receipt: None,
            country: Some("KR".into()),
        }
    }
}

/// Toss's answer to the confirm of an authenticated card payment: DONE with its card.
fn approve_card(p: &mut Payment, now: OffsetDateTime) {
    p.status = "DONE".into();
    p.approved_at = Some(iso_kst(now));
    p.last_transaction_key = Some(transaction_key());
    p.receipt = Some(Receipt {
        url: format!("https://receipt.toss-sandbox.invalid/{}", p.payment_key),
    });
    p.card = Some(serde_json::json!({
        "issuerCode": "71",
        "acquirerCode": "71",
        "number": "43301234****123*",
        "installmentPlanMonths": 0,
        "isInterestFree": false,
        "interestPayer": null,
        "approveNo": format!("{:08}", rand::random_range(0..100_000_000u32)),
        "useCardPoint": false,
        "cardType": "신용",
        "ownerType": "개인",
        "acquireStatus": "READY",
        "amount": p.total_amount,
    }));
}

/// Toss's answer to the confirm of a virtual-account payment: an account issued, waiting for
/// the deposit until `due`.
fn issue_account(p: &mut Payment, due: OffsetDateTime) {
    p.status = "WAITING_FOR_DEPOSIT".into();
    p.method = Some("가상계좌".into());
    p.secret = Some(format!("ps_{}", uuid::Uuid::new_v4().simple()));
    p.last_transaction_key = Some(transaction_key());
    p.virtual_account = Some(serde_json::json!({
        "accountType": "일반",
        "accountNumber": format!("X{:013}", rand::random_range(0..10_000_000_000_000u64)),
        "bankCode": "20",
        "customerName": "샌드박스",
        "dueDate": local_kst(due),
        "refundStatus": "NONE",
        "expired": false,
        "settlementStatus": "INCOMPLETED",
    }));
}

impl Ledger {
    pub(crate) fn create(
        &mut self,
        req: CreatePayment,
        now: OffsetDateTime,
    ) -> Result<Payment, SandboxError> {
        let new = NewPayment::checked(req)?;
        if self.paid_for_order(&new.order_id).is_some() {
            return Err(SandboxError::new("DUPLICATED_ORDER_ID"));
        }
        let payment = new.payment(now);
        let index = self.records.len();
        self.by_key.insert(payment.payment_key.clone(), index);
        self.by_order.entry(new.order_id).or_default().push(index);
        self.records.push(Record {
            payment: payment.clone(),
            authenticated_at: now,
            forced_failure: new.forced_failure,
            virtual_account: new.virtual_account,
            deposit_due: None,
        });
        self.open_since = Some(self.open_since.map_or(now, |t| t.min(now)));
        Ok(payment)
    }

    pub(crate) fn confirm(
        &mut self,
        req: &ConfirmRequest,
        now: OffsetDateTime,
    ) -> Result<Payment, SandboxError> {
        let index = self.confirmable(req, now)?;
        let record = &mut self.records[index];
        if let Some(code) = record.forced_failure.clone() {
            let err = SandboxError::new(code);
            record.payment.status = "ABORTED".into();
            record.payment.failure = Some(ErrorBody {
                code: err.code().to_owned(),
                message: err.message(),
            });
            self.changed.push(record.payment.clone());
            return Err(err);
        }
        if record.virtual_account {
            let due = now + Duration::days(VIRTUAL_ACCOUNT_DAYS);
            record.deposit_due = Some(due);
            issue_account(&mut record.payment, due);
            // Issuing the account: DEPOSIT_CALLBACK only, no PAYMENT_STATUS_CHANGED.
            let waiting = record.payment.clone();
            self.deposit_events.push(waiting.clone());
            return Ok(waiting);
        }
        approve_card(&mut record.payment, now);
        let done = record.payment.clone();
        self.changed.push(done.clone());
        Ok(done)
    }

    /// The checks Toss makes on a confirm request, in its order; the index of the payment.
    fn confirmable(
        &mut self,
        req: &ConfirmRequest,
        now: OffsetDateTime,
    ) -> Result<usize, SandboxError> {
        if req.payment_key.is_empty() || req.payment_key.chars().count() > MAX_PAYMENT_KEY_CHARS {
            return Err(SandboxError::invalid(
                "paymentKey는 1자 이상 200자 이하여야 합니다.",
                "paymentKey must be 1 to 200 characters.",
            ));
        }
        if !valid_order_id(&req.order_id) {
            return Err(bad_order_id());
        }
        if req.amount < MIN_CARD_AMOUNT {
            return Err(SandboxError::new("BELOW_MINIMUM_AMOUNT"));
        }
        let index = self.index_of(&req.payment_key)?;
        self.expire_if_due(index, now);
        let record = &self.records[index];
        match record.payment.status.as_str() {
            "IN_PROGRESS" => {}
            "EXPIRED" | "READY" => return Err(SandboxError::new("NOT_FOUND_PAYMENT_SESSION")),
            _ => return Err(SandboxError::new("ALREADY_PROCESSED_PAYMENT")),
        }
        if record.payment.order_id != req.order_id {
            return Err(SandboxError::invalid(
                "orderId가 결제 인증 시의 주문번호와 일치하지 않습니다.",
                "orderId does not match the authenticated payment.",
            ));
        }
        if record.payment.total_amount != req.amount {
            return Err(SandboxError::invalid(
                "amount가 결제 인증 시의 금액과 일치하지 않습니다.",
                "amount does not match the authenticated payment.",
            ));
        }
        if self.paid_for_order(&req.order_id).is_some() {
            return Err(SandboxError::new("DUPLICATED_ORDER_ID"));
        }
        Ok(index)
    }

    /// The buyer wired the money to a virtual account: WAITING_FOR_DEPOSIT → DONE.
    pub(crate) fn deposit(
        &mut self,
        payment_key: &str,
        now: OffsetDateTime,
    ) -> Result<Payment, SandboxError> {
        let index = self.index_of(payment_key)?;
        let record = &mut self.records[index];
        // A closed account (CANCELED) or one past its due date takes no money: the buyer's
        // bank refuses the transfer, nothing reaches Toss.
        if record.payment.status != "WAITING_FOR_DEPOSIT"
            || record.deposit_due.is_some_and(|due| now > due)
        {
            return Err(SandboxError::invalid(
                "입금 대기 중인 가상계좌 결제가 아닙니다.",
                "not a virtual-account payment waiting for its deposit.",
            ));
        }
        let p = &mut record.payment;
        p.status = "DONE".into();
        p.approved_at = Some(iso_kst(now));
        p.last_transaction_key = Some(transaction_key());
        let done = p.clone();
        self.changed.push(done.clone());
        self.deposit_events.push(done.clone());
        Ok(done)
    }

    /// The bank took a deposit back: DONE → WAITING_FOR_DEPOSIT (the account waits again).
    pub(crate) fn reverse_deposit(&mut self, payment_key: &str) -> Result<Payment, SandboxError> {
        let index = self.index_of(payment_key)?;
        let record = &mut self.records[index];
        let p = &mut record.payment;
        if !record.virtual_account || p.status != "DONE" || p.cancels.is_some() {
            return Err(SandboxError::invalid(
                "입금 완료된(취소 없는) 가상계좌 결제가 아닙니다.",
                "not a deposited virtual-account payment without cancels.",
            ));
        }
        p.status = "WAITING_FOR_DEPOSIT".into();
        p.approved_at = None;
        p.last_transaction_key = Some(transaction_key());
        let waiting = p.clone();
        self.changed.push(waiting.clone());
        self.deposit_events.push(waiting.clone());
        Ok(waiting)
    }

    pub(crate) fn take_deposit_events(&mut self) -> Vec<Payment> {
        std::mem::take(&mut self.deposit_events)
    }

    pub(crate) fn cancel(
        &mut self,
        payment_key: &str,
        req: &CancelRequest,
        now: OffsetDateTime,
    ) -> Result<Payment, SandboxError> {
        let reason_chars = req.cancel_reason.chars().count();
        if req.cancel_reason.trim().is_empty() || reason_chars > MAX_CANCEL_REASON_CHARS {
            return Err(SandboxError::invalid(
                "cancelReason은 1자 이상 200자 이하여야 합니다.",
                "cancelReason must be 1 to 200 characters.",
            ));
        }
        let index = self.index_of(payment_key)?;
        self.expire_if_due(index, now);
        let record = &mut self.records[index];
        let virtual_account = record.virtual_account;
        let p = &mut record.payment;
        let before_deposit = virtual_account && p.status == "WAITING_FOR_DEPOSIT";
        if before_deposit {
            // Only the whole amount: the account is closed, nothing was paid to give back.
            if req.cancel_amount.is_some_and(|a| a != p.balance_amount) {
                return Err(SandboxError::new(
                    "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT",
                ));
            }
            if req.refund_receive_account.is_some() {
                return Err(account_not_expected());
            }
        } else if matches!(p.status.as_str(), "DONE" | "PARTIAL_CANCELED") {
            match (&req.refund_receive_account, virtual_account) {
                (None, true) => {
                    return Err(SandboxError::invalid(
                        "입금 완료된 가상계좌 결제를 취소하려면 refundReceiveAccount가 필요합니다.",
                        "refundReceiveAccount is required to cancel a deposited virtual-account payment.",
                    ));
                }
                (Some(account), true) => check_refund_account(account)?,
                (Some(_), false) => return Err(account_not_expected()),
                _ => {}
            }
        }
        match p.status.as_str() {
            "DONE" | "PARTIAL_CANCELED" => {}
            "WAITING_FOR_DEPOSIT" if before_deposit => {}
            "CANCELED" => return Err(SandboxError::new("ALREADY_CANCELED_PAYMENT")),
            _ => return Err(SandboxError::new("NOT_CANCELABLE_PAYMENT")),
        }
        if req.refundable_amount.is_some_and(|r| r != p.balance_amount) {
            return Err(SandboxError::new("NOT_MATCHES_REFUNDABLE_AMOUNT"));
        }
        let amount = req.cancel_amount.unwrap_or(p.balance_amount);
        if amount <= 0 || amount > p.balance_amount {
            return Err(SandboxError::new("NOT_CANCELABLE_AMOUNT"));
        }
        let tx = transaction_key();
        p.balance_amount -= amount;
        p.status = if p.balance_amount == 0 {
            "CANCELED".into()
        } else {
            "PARTIAL_CANCELED".into()
        };
        p.last_transaction_key = Some(tx.clone());
        p.cancels.get_or_insert_with(Vec::new).push(Cancel {
            cancel_amount: amount,
            cancel_reason: req.cancel_reason.clone(),
            canceled_at: Some(iso_kst(now)),
            transaction_key: tx,
            refundable_amount: p.balance_amount,
            cancel_status: Some("DONE".into()),
        });
        (p.supplied_amount, p.vat) = split_vat(p.balance_amount);
        if before_deposit
            && let Some(va) = p.virtual_account.as_mut().and_then(|v| v.as_object_mut())
        {
            va.insert("expired".into(), serde_json::json!(true));
        }
        let snapshot = p.clone();
        self.changed.push(snapshot.clone());
        if virtual_account {
            self.deposit_events.push(snapshot.clone());
        }
        Ok(snapshot)
    }

    pub(crate) fn get(&self, payment_key: &str) -> Option<&Payment> {
        self.by_key
            .get(payment_key)
            .map(|&i| &self.records[i].payment)
    }

    /// The approved payment for the order if there is one, else the latest created.
    pub(crate) fn get_by_order(&self, order_id: &str) -> Option<&Payment> {
        self.paid_for_order(order_id).or_else(|| {
            self.by_order
                .get(order_id)
                .and_then(|ids| ids.last())
                .map(|&i| &self.records[i].payment)
        })
    }

    pub(crate) fn all(&self) -> Vec<Payment> {
        self.records.iter().map(|r| r.payment.clone()).collect()
    }

    /// Applies the confirm window to every payment still waiting for its confirm.
    pub(crate) fn expire_due(&mut self, now: OffsetDateTime) {
        // The shortest window (a READY payment's is longer) from the oldest open payment: if
        // even that has not passed, nothing is due.
        match self.open_since {
            Some(oldest) if now - oldest > CONFIRM_WINDOW.min(READY_WINDOW) => {}
            _ => return,
        }
        let mut open_since = None::<OffsetDateTime>;
        for index in 0..self.records.len() {
            self.expire_if_due(index, now);
            let record = &self.records[index];
            if matches!(record.payment.status.as_str(), "IN_PROGRESS" | "READY") {
                let t = record.authenticated_at;
                open_since = Some(open_since.map_or(t, |o| o.min(t)));
            }
        }
        self.open_since = open_since;
    }

    pub(crate) fn take_changed(&mut self) -> Vec<Payment> {
        std::mem::take(&mut self.changed)
    }

    fn expire_if_due(&mut self, index: usize, now: OffsetDateTime) {
        let record = &mut self.records[index];
        let window = match record.payment.status.as_str() {
            "IN_PROGRESS" => CONFIRM_WINDOW,
            "READY" => READY_WINDOW,
            _ => return,
        };
        if now - record.authenticated_at > window {
            let p = &mut record.payment;
            p.status = "EXPIRED".into();
            p.use_escrow = None;
            p.failure = Some(ErrorBody {
                code: "EXPIRED_PAYMENT".into(),
                message: "결제 유효 시간이 지나 만료된 결제입니다.".into(),
            });
            self.changed.push(p.clone());
        }
    }

    fn index_of(&self, payment_key: &str) -> Result<usize, SandboxError> {
        self.by_key
            .get(payment_key)
            .copied()
            .ok_or_else(|| SandboxError::new("NOT_FOUND_PAYMENT"))
    }

    fn paid_for_order(&self, order_id: &str) -> Option<&Payment> {
        self.by_order
            .get(order_id)?
            .iter()
            .map(|&i| &self.records[i].payment)
            .find(|p| is_paid(&p.status))
    }
}

/// Toss's Payment object as served over HTTP, in Korean: the wire type plus the fields it does
/// not model.
pub(crate) fn to_json(p: &Payment) -> serde_json::Value {
    to_json_in(p, Lang::Ko)
}

/// Korean values and their `Accept-Language: en-US` translations, as Toss's English answers
/// spell them.
const VALUE_TRANSLATIONS: &[(&str, &str)] = &[
    ("카드", "CARD"),
    ("가상계좌", "VIRTUAL_ACCOUNT"),
    ("간편결제", "EASY_PAY"),
    ("계좌이체", "TRANSFER"),
    ("휴대폰", "MOBILE_PHONE"),
    ("신용", "CREDIT"),
    ("체크", "DEBIT"),
    ("기프트", "GIFT"),
    ("개인", "PERSONAL"),
    ("법인", "CORPORATE"),
    ("일반", "NORMAL"),
    ("고정", "FIXED"),
];

fn translate(value: &mut serde_json::Value) {
    if let Some(s) = value.as_str()
        && let Some((_, en)) = VALUE_TRANSLATIONS.iter().find(|(ko, _)| *ko == s)
    {
        *value = serde_json::json!(en);
    }
}

/// [`to_json`] in the request's language: under `en-US` Toss translates enumerated values too.
pub(crate) fn to_json_in(p: &Payment, lang: Lang) -> serde_json::Value {
    // A struct of strings, numbers and JSON values always converts; the fallback is unreachable.
    let mut value = serde_json::to_value(p).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        for (k, v) in [
            ("taxExemptionAmount", serde_json::json!(0)),
            ("discount", serde_json::Value::Null),
            ("mobilePhone", serde_json::Value::Null),
            ("giftCertificate", serde_json::Value::Null),
            ("transfer", serde_json::Value::Null),
            ("cashReceipt", serde_json::Value::Null),
            ("cashReceipts", serde_json::Value::Null),
            ("metadata", serde_json::Value::Null),
        ] {
            obj.entry(k).or_insert(v);
        }
        if lang == Lang::En {
            for path in [
                &["method"][..],
                &["card", "cardType"][..],
                &["card", "ownerType"][..],
                &["virtualAccount", "accountType"][..],
            ] {
                let mut cur = Some(&mut *obj);
                let Some((last, parents)) = path.split_last() else {
                    continue;
                };
                for parent in parents {
                    cur = cur
                        .and_then(|o| o.get_mut(*parent))
                        .and_then(|v| v.as_object_mut());
                }
                if let Some(v) = cur.and_then(|o| o.get_mut(*last)) {
                    translate(v);
                }
            }
        }
        if let Some(cancels) = obj.get_mut("cancels").and_then(|c| c.as_array_mut()) {
            for c in cancels.iter_mut().filter_map(|c| c.as_object_mut()) {
                for k in [
                    "taxFreeAmount",
                    "taxExemptionAmount",
                    "easyPayDiscountAmount",
                ] {
                    c.entry(k).or_insert(serde_json::json!(0));
                }
            }
        }
    }
    value
}

/// An uppercase Toss-style error code (`REJECT_CARD_PAYMENT`).
pub(crate) fn is_code_shaped(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The shape of a refund account, each part refused with its own documented cancel code.
fn check_refund_account(a: &toss::wire::RefundReceiveAccount) -> Result<(), SandboxError> {
    let digits = a.account_number.len();
    let holder = a.holder_name.trim().chars().count();
    if a.bank.trim().is_empty() {
        return Err(SandboxError::new("INVALID_BANK"));
    }
    if !(1..=MAX_ACCOUNT_NUMBER_DIGITS).contains(&digits)
        || !a.account_number.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SandboxError::new("INVALID_REFUND_ACCOUNT_NUMBER"));
    }
    if !(1..=MAX_HOLDER_NAME_CHARS).contains(&holder) {
        return Err(SandboxError::new("INVALID_REFUND_ACCOUNT_INFO"));
    }
    Ok(())
}

fn account_not_expected() -> SandboxError {
    SandboxError::invalid(
        "refundReceiveAccount는 입금 완료된 가상계좌 결제를 취소할 때만 보낼 수 있습니다.",
        "refundReceiveAccount is only for cancelling a deposited virtual-account payment.",
    )
}

/// (suppliedAmount, vat): VAT is 1/11 of a VAT-inclusive amount, rounded half up, as in Toss's
/// examples (15000 → 13636 + 1364).
fn split_vat(amount: i64) -> (i64, i64) {
    let vat = (amount + 5) / 11;
    (amount - vat, vat)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn confirm_req(p: &Payment) -> ConfirmRequest {
        ConfirmRequest {
            payment_key: p.payment_key.clone(),
            order_id: p.order_id.clone(),
            amount: p.total_amount,
        }
    }

    fn cancel_req(amount: Option<i64>) -> CancelRequest {
        CancelRequest {
            cancel_reason: "test".into(),
            cancel_amount: amount,
            refundable_amount: None,
            refund_receive_account: None,
        }
    }

    #[test]
    fn vat_matches_toss_example() {
        assert_eq!(split_vat(15000), (13636, 1364));
        assert_eq!(split_vat(10000), (9091, 909));
    }

    #[test]
    fn confirm_then_cancel_in_parts() {
        let mut l = Ledger::default();
        let p = l
            .create(CreatePayment::new("order-1", 10000), t0())
            .unwrap();
        let done = l.confirm(&confirm_req(&p), t0()).unwrap();
        assert_eq!(done.status, "DONE");
        assert_eq!(
            done.approved_at.as_deref(),
            Some("1970-01-01T09:00:00+09:00")
        );
        let part = l
            .cancel(&p.payment_key, &cancel_req(Some(3000)), t0())
            .unwrap();
        assert_eq!(
            (part.status.as_str(), part.balance_amount),
            ("PARTIAL_CANCELED", 7000)
        );
        let full = l.cancel(&p.payment_key, &cancel_req(None), t0()).unwrap();
        assert_eq!((full.status.as_str(), full.balance_amount), ("CANCELED", 0));
        let cancels = full.cancels.unwrap();
        assert_eq!(cancels[0].refundable_amount, 7000);
        assert_eq!(cancels[1].cancel_amount, 7000);
        assert_eq!(l.take_changed().len(), 3);
    }

    #[test]
    fn expiry_is_reported_once() {
        let mut l = Ledger::default();
        let p = l.create(CreatePayment::new("order-2", 1000), t0()).unwrap();
        l.expire_due(t0() + CONFIRM_WINDOW);
        assert_eq!(l.get(&p.payment_key).unwrap().status, "IN_PROGRESS");
        let later = t0() + CONFIRM_WINDOW + Duration::seconds(1);
        l.expire_due(later);
        l.expire_due(later);
        assert_eq!(l.take_changed().len(), 1);
        let err = l.confirm(&confirm_req(&p), later).unwrap_err();
        assert_eq!(err.code(), "NOT_FOUND_PAYMENT_SESSION");
    }

    /// Expiry skips its walk while no payment can be due; a payment created at an earlier
    /// sandbox time than the one before it (the wall clock stepped back) still expires on time,
    /// and so does one created after a walk.
    #[test]
    fn expiry_finds_every_due_payment_whatever_the_creation_order() {
        let mut l = Ledger::default();
        let late = l
            .create(
                CreatePayment::new("order-late", 1000),
                t0() + Duration::hours(1),
            )
            .unwrap();
        let early = l
            .create(CreatePayment::new("order-early", 1000), t0())
            .unwrap();
        let due_early = t0() + CONFIRM_WINDOW + Duration::seconds(1);
        l.expire_due(due_early);
        assert_eq!(l.get(&early.payment_key).unwrap().status, "EXPIRED");
        assert_eq!(l.get(&late.payment_key).unwrap().status, "IN_PROGRESS");
        let next = l
            .create(CreatePayment::new("order-next", 1000), due_early)
            .unwrap();
        l.expire_due(due_early + CONFIRM_WINDOW + Duration::seconds(1));
        assert_eq!(l.get(&next.payment_key).unwrap().status, "EXPIRED");
        assert_eq!(l.get(&late.payment_key).unwrap().status, "IN_PROGRESS");
        l.expire_due(t0() + Duration::hours(1) + CONFIRM_WINDOW + Duration::seconds(1));
        assert_eq!(l.get(&late.payment_key).unwrap().status, "EXPIRED");
        assert_eq!(l.take_changed().len(), 3);
    }

    #[test]
    fn one_approved_payment_per_order() {
        let mut l = Ledger::default();
        let a = l.create(CreatePayment::new("order-3", 1000), t0()).unwrap();
        let b = l.create(CreatePayment::new("order-3", 1000), t0()).unwrap();
        assert_eq!(
            l.get_by_order("order-3").unwrap().payment_key,
            b.payment_key
        );
        l.confirm(&confirm_req(&a), t0()).unwrap();
        assert_eq!(
            l.get_by_order("order-3").unwrap().payment_key,
            a.payment_key
        );
        let err = l.confirm(&confirm_req(&b), t0()).unwrap_err();
        assert_eq!(err.code(), "DUPLICATED_ORDER_ID");
        let err = l
            .create(CreatePayment::new("order-3", 1000), t0())
            .unwrap_err();
        assert_eq!(err.code(), "DUPLICATED_ORDER_ID");
    }

    #[test]
    fn create_validates() {
        let mut l = Ledger::default();
        for bad in [
            CreatePayment::new("short", 1000),
            CreatePayment::new("has space!", 1000),
            CreatePayment::new("order-4", 0),
            CreatePayment {
                outcome: Some("lowercase".into()),
                ..CreatePayment::new("order-4", 1000)
            },
        ] {
            assert_eq!(l.create(bad, t0()).unwrap_err().code(), "INVALID_REQUEST");
        }
    }

    #[test]
    fn virtual_account_waits_for_its_deposit() {
        let mut l = Ledger::default();
        let req = CreatePayment {
            method: Some("VIRTUAL_ACCOUNT".into()),
            ..CreatePayment::new("order-6", 5000)
        };
        let p = l.create(req, t0()).unwrap();
        let waiting = l.confirm(&confirm_req(&p), t0()).unwrap();
        assert_eq!(waiting.status, "WAITING_FOR_DEPOSIT");
        assert!(waiting.secret.as_deref().is_some_and(|s| s.len() > 10));
        assert!(waiting.virtual_account.is_some());
        assert!(l.take_changed().is_empty());
        assert_eq!(l.take_deposit_events().len(), 1, "issued: DEPOSIT_CALLBACK");
        // Not expired by the confirm window: the account waits for its money.
        l.expire_due(t0() + CONFIRM_WINDOW + Duration::hours(1));
        let done = l.deposit(&p.payment_key, t0()).unwrap();
        assert_eq!(
            (done.status.as_str(), done.secret),
            ("DONE", waiting.secret)
        );
        assert_eq!(l.take_deposit_events().len(), 1);
        assert_eq!(l.take_changed().len(), 1);
        assert_eq!(
            l.deposit(&p.payment_key, t0()).unwrap_err().code(),
            "INVALID_REQUEST"
        );
        let bad = CreatePayment {
            method: Some("CASH".into()),
            ..CreatePayment::new("order-7", 5000)
        };
        assert_eq!(l.create(bad, t0()).unwrap_err().code(), "INVALID_REQUEST");
    }

    #[test]
    fn a_closed_or_overdue_account_takes_no_deposit() {
        let mut l = Ledger::default();
        let va = |l: &mut Ledger, order: &str| {
            let req = CreatePayment {
                method: Some("VIRTUAL_ACCOUNT".into()),
                ..CreatePayment::new(order, 5000)
            };
            let p = l.create(req, t0()).unwrap();
            l.confirm(&confirm_req(&p), t0()).unwrap()
        };
        // Past its due date: refused, still waiting (Toss closes nothing by itself here).
        let overdue = va(&mut l, "order-8");
        let after_due = t0() + Duration::days(VIRTUAL_ACCOUNT_DAYS) + Duration::seconds(1);
        assert_eq!(
            l.deposit(&overdue.payment_key, after_due)
                .unwrap_err()
                .code(),
            "INVALID_REQUEST"
        );
        assert_eq!(
            l.get(&overdue.payment_key).unwrap().status,
            "WAITING_FOR_DEPOSIT"
        );
        // Closed by a full cancel: CANCELED, no approval, and no deposit afterwards.
        let closed = va(&mut l, "order-9");
        let canceled = l
            .cancel(&closed.payment_key, &cancel_req(None), t0())
            .unwrap();
        assert_eq!(
            (canceled.status.as_str(), canceled.approved_at.as_deref()),
            ("CANCELED", None)
        );
        assert_eq!(
            l.deposit(&closed.payment_key, t0()).unwrap_err().code(),
            "INVALID_REQUEST"
        );
        // Within the due date a deposit is taken; reversed, the same account takes another.
        let open = va(&mut l, "order-10");
        l.deposit(&open.payment_key, t0()).unwrap();
        l.reverse_deposit(&open.payment_key).unwrap();
        let again = l.deposit(&open.payment_key, t0()).unwrap();
        assert_eq!(again.status, "DONE");
    }

    #[test]
    fn forced_outcome_aborts() {
        let mut l = Ledger::default();
        let req = CreatePayment {
            outcome: Some("REJECT_CARD_PAYMENT".into()),
            ..CreatePayment::new("order-5", 1000)
        };
        let p = l.create(req, t0()).unwrap();
        let err = l.confirm(&confirm_req(&p), t0()).unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("REJECT_CARD_PAYMENT", 403)
        );
        let aborted = l.get(&p.payment_key).unwrap();
        assert_eq!(aborted.status, "ABORTED");
        assert_eq!(
            aborted.failure.as_ref().unwrap().code,
            "REJECT_CARD_PAYMENT"
        );
        let err = l.confirm(&confirm_req(&p), t0()).unwrap_err();
        assert_eq!(err.code(), "ALREADY_PROCESSED_PAYMENT");
    }
}
