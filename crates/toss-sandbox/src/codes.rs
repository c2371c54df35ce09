//! Toss's error codes: HTTP status and Korean/English message for each code the sandbox can
//! answer with, and [`SandboxError`], the error every sandbox operation returns.
//!
//! Statuses and messages follow Toss's error-code reference (docs.tosspayments.com/reference/
//! error-codes): the same code always comes with the same HTTP status, and the body is
//! `{"code", "message"}`, Korean unless the request's `Accept-Language` starts with `en`.
//!
//! Where Toss is silent the sandbox chooses:
//! - a code outside this table (a `TossPayments-Test-Code` or an `outcome` the sandbox does not
//!   know) answers 400 with a generic message, as Toss documents no status for it — so every
//!   code coursepay's client or tests name must be in the table with Toss's own status (a
//!   test checks the ones whose status matters: the 403 cancel refusals, the 500s);
//! - confirming with an `orderId` or `amount` other than the authenticated payment's answers
//!   400 `INVALID_REQUEST` with a message naming the field (Toss only says such confirms are
//!   blocked; the code is unconfirmed).

use std::fmt;

/// The language of an error message, from `Accept-Language`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Ko,
    En,
}

impl Lang {
    /// Toss answers English for `en-US`; the sandbox takes any first language tag starting
    /// with `en` (`en`, `en-GB`, ...) and Korean for everything else.
    pub(crate) fn from_headers(headers: &axum::http::HeaderMap) -> Lang {
        let first = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|tag| tag.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if first.starts_with("en") {
            Lang::En
        } else {
            Lang::Ko
        }
    }
}

/// (code, HTTP status, Korean message, English message).
#[rustfmt::skip]
const TABLE: &[(&str, u16, &str, &str)] = &[
    // Confirm, 400.
    ("ALREADY_PROCESSED_PAYMENT", 400, "이미 처리된 결제 입니다.", "This is a payment that has already been processed."),
    ("PROVIDER_ERROR", 400, "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요.", "This is temporary error. Please try again in a few minutes."),
    ("EXCEED_MAX_CARD_INSTALLMENT_PLAN", 400, "설정 가능한 최대 할부 개월 수를 초과했습니다.", "Maximum number of installment months exceeded."),
    ("INVALID_REQUEST", 400, "잘못된 요청입니다.", "The bad request."),
    ("NOT_ALLOWED_POINT_USE", 400, "포인트 사용이 불가한 카드로 카드 포인트 결제에 실패했습니다.", "Card point payment failed because the card cannot be used points."),
    ("INVALID_API_KEY", 400, "잘못된 시크릿키 연동 정보 입니다.", "Incorrect secret key."),
    ("INVALID_REJECT_CARD", 400, "카드 사용이 거절되었습니다. 카드사 문의가 필요합니다.", "Refer to card issuer/decline."),
    ("BELOW_MINIMUM_AMOUNT", 400, "신용카드는 결제금액이 100원 이상, 계좌는 200원이상부터 결제가 가능합니다.", "Payment can be made from 100 won or more by credit card, and 200 won or more for account."),
    ("INVALID_CARD_EXPIRATION", 400, "카드 정보를 다시 확인해주세요. (유효기간)", "Please check the card expiration date information again."),
    ("INVALID_STOPPED_CARD", 400, "정지된 카드 입니다.", "This is a stopped card."),
    ("EXCEED_MAX_DAILY_PAYMENT_COUNT", 400, "하루 결제 가능 횟수를 초과했습니다.", "Exceeded the number of payments allowed per day."),
    ("EXCEED_MAX_PAYMENT_AMOUNT", 400, "하루 결제 가능 금액을 초과했습니다.", "Exceeded the payment amount allowed per day."),
    ("INVALID_CARD_LOST_OR_STOLEN", 400, "분실 혹은 도난 카드입니다.", "This card has been reported lost or stolen."),
    ("INVALID_CARD_NUMBER", 400, "카드번호를 다시 확인해주세요.", "Please check the card number again."),
    ("CARD_PROCESSING_ERROR", 400, "카드사에서 오류가 발생했습니다.", "The card company had an error."),
    ("EXCEED_MAX_AMOUNT", 400, "거래금액 한도를 초과했습니다.", "The transaction amount limit was exceeded."),
    ("UNAPPROVED_ORDER_ID", 400, "아직 승인되지 않은 주문번호입니다.", "This order ID has not been approved yet."),
    ("DUPLICATED_ORDER_ID", 400, "이미 승인 및 취소가 진행된 중복된 주문번호 입니다. 다른 주문번호로 진행해주세요.", "This order ID has already been approved or canceled. Please use another order ID."),
    ("INVALID_IDEMPOTENCY_KEY", 400, "멱등키는 300자 이하의 값이어야 합니다.", "The idempotency key must be at most 300 characters."),
    // Cancel, 400.
    ("ALREADY_CANCELED_PAYMENT", 400, "이미 취소된 결제 입니다.", "This payment has already been canceled."),
    ("ALREADY_REFUND_PAYMENT", 400, "이미 환불된 결제입니다.", "This payment has already been refunded."),
    ("NOT_MATCHES_REFUNDABLE_AMOUNT", 400, "잔액 결과가 일치하지 않습니다.", "The refundable amount does not match the balance."),
    ("REFUND_REJECTED", 400, "환불이 거절됐습니다. 결제사에 문의 부탁드립니다.", "The refund was rejected. Please contact the payment provider."),
    ("INVALID_REFUND_ACCOUNT_INFO", 400, "환불 계좌번호와 예금주명이 일치하지 않습니다.", "The refund account number and holder name do not match."),
    ("INVALID_BANK", 400, "유효하지 않은 은행입니다.", "Invalid bank."),
    ("INVALID_REFUND_ACCOUNT_NUMBER", 400, "잘못된 환불 계좌번호입니다.", "Incorrect refund account number."),
    ("FORBIDDEN_BANK_REFUND_REQUEST", 400, "고객 계좌가 입금이 되지 않는 상태입니다.", "The customer's account cannot take deposits."),
    // 401.
    ("UNAUTHORIZED_KEY", 401, "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.", "Unauthorized secret key or client key."),
    // 403.
    ("REJECT_ACCOUNT_PAYMENT", 403, "잔액부족으로 결제에 실패했습니다.", "Payment failed due to insufficient balance."),
    ("REJECT_CARD_PAYMENT", 403, "한도초과 혹은 잔액부족으로 결제에 실패했습니다.", "Payment failed due to an exceeded limit or insufficient balance."),
    ("REJECT_CARD_COMPANY", 403, "결제 승인이 거절되었습니다.", "Payment confirmation was rejected."),
    ("FORBIDDEN_REQUEST", 403, "허용되지 않은 요청입니다.", "This request is not allowed."),
    ("EXCEED_MAX_AUTH_COUNT", 403, "최대 인증 횟수를 초과했습니다. 카드사로 문의해주세요.", "Exceeded the maximum number of authentications. Please contact the card company."),
    ("EXCEED_MAX_ONE_DAY_AMOUNT", 403, "일일 한도를 초과했습니다.", "The daily limit was exceeded."),
    ("NOT_AVAILABLE_BANK", 403, "은행 서비스 시간이 아닙니다.", "The bank is outside its service hours."),
    ("INVALID_PASSWORD", 403, "결제 비밀번호가 일치하지 않습니다.", "The payment password does not match."),
    ("INCORRECT_BASIC_AUTH_FORMAT", 403, "잘못된 요청입니다. ':' 를 포함해 인코딩해주세요.", "It is a wrong request. Please encode including ':'."),
    ("FDS_ERROR", 403, "[토스페이먼츠] 위험거래가 감지되어 결제가 제한됩니다.", "[TossPayments] Payment is restricted because a risky transaction was detected."),
    ("FORBIDDEN_CONSECUTIVE_REQUEST", 403, "반복적인 요청은 허용되지 않습니다. 잠시 후 다시 시도해주세요.", "Consecutive requests are not allowed. Please try again later."),
    ("NOT_CANCELABLE_AMOUNT", 403, "취소 할 수 없는 금액 입니다.", "This amount cannot be canceled."),
    ("NOT_CANCELABLE_PAYMENT", 403, "취소 할 수 없는 결제 입니다.", "This payment cannot be canceled."),
    ("EXCEED_MAX_REFUND_DUE", 403, "환불 가능한 기간이 지났습니다.", "The refund period has passed."),
    ("NOT_ALLOWED_PARTIAL_REFUND", 403, "에스크로 주문, 현금 카드 결제일 때는 부분 환불이 불가합니다.", "Partial refunds are not possible for escrow orders or cash-card payments."),
    ("NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT", 403, "입금 대기중인 결제는 부분 환불이 불가합니다.", "A payment waiting for its deposit cannot be partially refunded."),
    ("EXCEED_CANCEL_LIMIT", 403, "취소 가능 한도를 초과했습니다.", "The cancel limit was exceeded."),
    // 404.
    ("NOT_FOUND_PAYMENT", 404, "존재하지 않는 결제 정보 입니다.", "Payment information does not exist."),
    ("NOT_FOUND_PAYMENT_SESSION", 404, "결제 시간이 만료되어 결제 진행 데이터가 존재하지 않습니다.", "The payment time has expired and the payment session no longer exists."),
    ("NOT_FOUND", 404, "존재하지 않는 정보 입니다.", "The information does not exist."),
    // 409.
    ("IDEMPOTENT_REQUEST_PROCESSING", 409, "이전 멱등 요청이 처리중입니다.", "The previous idempotent request is still being processed."),
    // 500.
    ("FAILED_INTERNAL_SYSTEM_PROCESSING", 500, "내부 시스템 처리 작업이 실패했습니다. 잠시 후 다시 시도해주세요.", "Internal system processing failed. Please try again later."),
    ("FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING", 500, "결제가 완료되지 않았어요. 다시 시도해주세요.", "The payment was not completed. Please try again."),
    ("UNKNOWN_PAYMENT_ERROR", 500, "결제에 실패했어요. 같은 문제가 반복된다면 은행이나 카드사로 문의해주세요.", "The payment failed. If this keeps happening, contact your bank or card company."),
    ("FAILED_REFUND_PROCESS", 500, "은행 응답시간 지연이나 일시적인 오류로 환불요청에 실패했습니다.", "The refund failed because of a bank delay or a temporary error."),
    ("FAILED_PARTIAL_REFUND", 500, "은행 점검, 해약 계좌 등의 사유로 부분 환불이 실패했습니다.", "The partial refund failed (bank maintenance, closed account, ...)."),
    ("FAILED_METHOD_HANDLING_CANCEL", 500, "취소 중 결제 시 사용한 결제 수단 처리과정에서 일시적인 오류가 발생했습니다.", "A temporary error occurred while the payment method was handling the cancel."),
    ("FAILED_CLOSED_ACCOUNT_REFUND", 500, "해지 계좌로 인해 환불이 실패했습니다.", "The refund failed because the account is closed."),
    ("COMMON_ERROR", 500, "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요.", "A temporary error occurred. Please try again later."),
];

fn lookup(code: &str) -> Option<&'static (&'static str, u16, &'static str, &'static str)> {
    TABLE.iter().find(|(c, ..)| *c == code)
}

/// A Toss error as the sandbox answers it: a code, and optionally a message more precise than
/// the code's generic one (Toss's `INVALID_REQUEST` messages name the offending field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxError {
    code: String,
    detail: Option<(String, String)>,
}

impl SandboxError {
    pub fn new(code: impl Into<String>) -> Self {
        SandboxError {
            code: code.into(),
            detail: None,
        }
    }

    /// `INVALID_REQUEST` with a message in both languages.
    pub(crate) fn invalid(ko: impl Into<String>, en: impl Into<String>) -> Self {
        SandboxError {
            code: "INVALID_REQUEST".into(),
            detail: Some((ko.into(), en.into())),
        }
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// Toss's HTTP status for the code; 400 for a code Toss does not document.
    pub fn http_status(&self) -> u16 {
        lookup(&self.code).map_or(400, |(_, status, ..)| *status)
    }

    /// The Korean message, as Toss answers by default and stores in `failure.message`.
    pub fn message(&self) -> String {
        self.message_in(Lang::Ko)
    }

    pub fn message_en(&self) -> String {
        self.message_in(Lang::En)
    }

    pub(crate) fn message_in(&self, lang: Lang) -> String {
        if let Some((ko, en)) = &self.detail {
            return match lang {
                Lang::Ko => ko.clone(),
                Lang::En => en.clone(),
            };
        }
        match (lookup(&self.code), lang) {
            (Some((_, _, ko, _)), Lang::Ko) => (*ko).to_owned(),
            (Some((_, _, _, en)), Lang::En) => (*en).to_owned(),
            (None, Lang::Ko) => "테스트용 에러 코드로 요청이 실패했습니다.".to_owned(),
            (None, Lang::En) => "The request failed with the requested test error code.".to_owned(),
        }
    }

    pub(crate) fn body(&self, lang: Lang) -> toss::wire::ErrorBody {
        toss::wire::ErrorBody {
            code: self.code.clone(),
            message: self.message_in(lang),
        }
    }
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.http_status(),
            self.code,
            self.message_en()
        )
    }
}

impl std::error::Error for SandboxError {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_once_with_a_toss_status_and_both_messages() {
        let mut seen = HashSet::new();
        for (code, status, ko, en) in TABLE {
            assert!(seen.insert(*code), "{code} listed twice");
            assert!([400, 401, 403, 404, 409, 500].contains(status), "{code}");
            assert!(!ko.is_empty() && !en.is_empty(), "{code}");
            assert!(code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
    }

    #[test]
    fn statuses_match_toss_md() {
        for (code, status) in [
            ("REJECT_CARD_PAYMENT", 403),
            ("NOT_FOUND_PAYMENT_SESSION", 404),
            ("ALREADY_PROCESSED_PAYMENT", 400),
            ("UNAUTHORIZED_KEY", 401),
            ("INCORRECT_BASIC_AUTH_FORMAT", 403),
            ("IDEMPOTENT_REQUEST_PROCESSING", 409),
            ("NOT_CANCELABLE_AMOUNT", 403),
            ("EXCEED_MAX_REFUND_DUE", 403),
            ("NOT_ALLOWED_PARTIAL_REFUND", 403),
            ("FORBIDDEN_CONSECUTIVE_REQUEST", 403),
            ("NOT_FOUND", 404),
            ("FAILED_METHOD_HANDLING_CANCEL", 500),
            ("FAILED_INTERNAL_SYSTEM_PROCESSING", 500),
            ("SOMETHING_UNDOCUMENTED", 400),
        ] {
            assert_eq!(SandboxError::new(code).http_status(), status, "{code}");
        }
    }

    #[test]
    fn language_from_header() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(Lang::from_headers(&h), Lang::Ko);
        h.insert("accept-language", "en-US,en;q=0.9".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::En);
        h.insert("accept-language", "ko-KR,en;q=0.5".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::Ko);
    }
}
