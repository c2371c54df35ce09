//! The one error catalog. Every error a client can see is an [`ErrorCode`]: its HTTP status,
//! whether retrying can help, and a user-facing message in every locale are written here once,
//! as exhaustive matches, so adding a code without a status or a translation does not compile.
//! The HTTP layer turns a code into problem+json; the i18n endpoint serves [`ErrorCode::message`];
//! clients branch on [`ErrorCode::as_str`].

use serde::Serialize;
use std::fmt;

/// Declares [`ErrorCode`] and [`ErrorCode::ALL`] from one list, so `ALL` holds every variant
/// by construction: code that iterates the catalog (the i18n table, the metrics created at
/// startup) cannot miss a code added later.
macro_rules! error_codes {
    ($($variant:ident),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(into = "&'static str")]
        pub enum ErrorCode {
            $($variant),+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];
        }
    };
}

error_codes! {
    InvalidRequest,
    PayloadTooLarge,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    CourseNotFound,
    OrderNotFound,
    OrderExpired,
    AlreadyEnrolled,
    AmountMismatch,
    ConfirmInProgress,
    PaymentRejected,
    PgUnavailable,
    PgTimeout,
    PaymentsPaused,
    IdempotencyKeyReused,
    PaymentNotFound,
    RefundNotAllowed,
    OrderNotCancelable,
    EnrollmentNotFound,
    NotEnrolled,
    AttemptNotFound,
    AttemptAlreadySubmitted,
    AttemptLimitReached,
    TooManyOpenOrders,
    WebhookInvalidSig,
    WebhookReplayed,
    RateLimited,
    ServiceUnavailable,
    RequestTimeout,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    Ko,
    En,
}

impl Locale {
    pub const ALL: &'static [Locale] = &[Locale::Ko, Locale::En];
    pub fn parse(s: &str) -> Option<Locale> {
        match s {
            "ko" | "ko-KR" => Some(Locale::Ko),
            "en" | "en-US" => Some(Locale::En),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Ko => "ko",
            Locale::En => "en",
        }
    }
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "E_INVALID_REQUEST",
            ErrorCode::PayloadTooLarge => "E_PAYLOAD_TOO_LARGE",
            ErrorCode::Unauthorized => "E_UNAUTHORIZED",
            ErrorCode::Forbidden => "E_FORBIDDEN",
            ErrorCode::NotFound => "E_NOT_FOUND",
            ErrorCode::MethodNotAllowed => "E_METHOD_NOT_ALLOWED",
            ErrorCode::CourseNotFound => "E_COURSE_NOT_FOUND",
            ErrorCode::OrderNotFound => "E_ORDER_NOT_FOUND",
            ErrorCode::OrderExpired => "E_ORDER_EXPIRED",
            ErrorCode::AlreadyEnrolled => "E_ALREADY_ENROLLED",
            ErrorCode::AmountMismatch => "E_AMOUNT_MISMATCH",
            ErrorCode::ConfirmInProgress => "E_CONFIRM_IN_PROGRESS",
            ErrorCode::PaymentRejected => "E_PAYMENT_REJECTED",
            ErrorCode::PgUnavailable => "E_PG_UNAVAILABLE",
            ErrorCode::PgTimeout => "E_PG_TIMEOUT",
            ErrorCode::PaymentsPaused => "E_PAYMENTS_PAUSED",
            ErrorCode::IdempotencyKeyReused => "E_IDEMPOTENCY_KEY_REUSED",
            ErrorCode::PaymentNotFound => "E_PAYMENT_NOT_FOUND",
            ErrorCode::RefundNotAllowed => "E_REFUND_NOT_ALLOWED",
            ErrorCode::OrderNotCancelable => "E_ORDER_NOT_CANCELABLE",
            ErrorCode::EnrollmentNotFound => "E_ENROLLMENT_NOT_FOUND",
            ErrorCode::NotEnrolled => "E_NOT_ENROLLED",
            ErrorCode::AttemptNotFound => "E_ATTEMPT_NOT_FOUND",
            ErrorCode::AttemptAlreadySubmitted => "E_ATTEMPT_ALREADY_SUBMITTED",
            ErrorCode::AttemptLimitReached => "E_ATTEMPT_LIMIT_REACHED",
            ErrorCode::TooManyOpenOrders => "E_TOO_MANY_OPEN_ORDERS",
            ErrorCode::WebhookInvalidSig => "E_WEBHOOK_INVALID_SIG",
            ErrorCode::WebhookReplayed => "E_WEBHOOK_REPLAYED",
            ErrorCode::RateLimited => "E_RATE_LIMITED",
            ErrorCode::ServiceUnavailable => "E_SERVICE_UNAVAILABLE",
            ErrorCode::RequestTimeout => "E_REQUEST_TIMEOUT",
            ErrorCode::Internal => "E_INTERNAL",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::AmountMismatch => 400,
            ErrorCode::Unauthorized | ErrorCode::WebhookInvalidSig => 401,
            ErrorCode::PaymentRejected => 402,
            ErrorCode::Forbidden | ErrorCode::NotEnrolled => 403,
            ErrorCode::NotFound
            | ErrorCode::CourseNotFound
            | ErrorCode::OrderNotFound
            | ErrorCode::PaymentNotFound
            | ErrorCode::EnrollmentNotFound
            | ErrorCode::AttemptNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::AlreadyEnrolled
            | ErrorCode::ConfirmInProgress
            | ErrorCode::RefundNotAllowed
            | ErrorCode::OrderNotCancelable
            | ErrorCode::AttemptAlreadySubmitted
            | ErrorCode::AttemptLimitReached
            | ErrorCode::TooManyOpenOrders
            | ErrorCode::WebhookReplayed => 409,
            ErrorCode::OrderExpired => 410,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::IdempotencyKeyReused => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::PgUnavailable
            | ErrorCode::PaymentsPaused
            | ErrorCode::ServiceUnavailable
            | ErrorCode::RequestTimeout => 503,
            ErrorCode::PgTimeout => 504,
        }
    }

    /// Whether the same request may succeed later. Clients show a retry button on these.
    pub fn retryable(self) -> bool {
        match self {
            ErrorCode::ConfirmInProgress
            | ErrorCode::PgUnavailable
            | ErrorCode::PgTimeout
            | ErrorCode::PaymentsPaused
            | ErrorCode::RateLimited
            | ErrorCode::ServiceUnavailable
            | ErrorCode::RequestTimeout
            | ErrorCode::Internal => true,
            ErrorCode::InvalidRequest
            | ErrorCode::PayloadTooLarge
            | ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::CourseNotFound
            | ErrorCode::OrderNotFound
            | ErrorCode::OrderExpired
            | ErrorCode::AlreadyEnrolled
            | ErrorCode::AmountMismatch
            | ErrorCode::PaymentRejected
            | ErrorCode::IdempotencyKeyReused
            | ErrorCode::PaymentNotFound
            | ErrorCode::RefundNotAllowed
            | ErrorCode::OrderNotCancelable
            | ErrorCode::EnrollmentNotFound
            | ErrorCode::NotEnrolled
            | ErrorCode::AttemptNotFound
            | ErrorCode::AttemptAlreadySubmitted
            | ErrorCode::AttemptLimitReached
            | ErrorCode::TooManyOpenOrders
            | ErrorCode::WebhookInvalidSig
            | ErrorCode::WebhookReplayed => false,
        }
    }

    /// The English message. (problem+json's `title` is in the request's language: Korean by
    /// default, English on `Accept-Language: en`.)
    pub fn title(self) -> &'static str {
        self.message(Locale::En)
    }

    /// The i18n key the storefront looks up (seed §8: `ui.payment.error.*`).
    pub fn i18n_key(self) -> String {
        format!("ui.payment.error.{}", self.as_str())
    }

    /// What a buyer or operator reads. Written for the person in front of the payment page.
    pub fn message(self, locale: Locale) -> &'static str {
        use ErrorCode::*;
        match (self, locale) {
            (InvalidRequest, Locale::Ko) => "요청 형식이 올바르지 않습니다.",
            (InvalidRequest, Locale::En) => "The request is not valid.",
            (PayloadTooLarge, Locale::Ko) => "요청 본문이 너무 큽니다.",
            (PayloadTooLarge, Locale::En) => "The request body is too large.",
            (Unauthorized, Locale::Ko) => "로그인이 필요합니다. 다시 로그인해 주세요.",
            (Unauthorized, Locale::En) => "Please sign in again.",
            (Forbidden, Locale::Ko) => "이 작업을 수행할 권한이 없습니다.",
            (Forbidden, Locale::En) => "You are not allowed to do this.",
            (NotFound, Locale::Ko) => "요청한 주소를 찾을 수 없습니다.",
            (NotFound, Locale::En) => "Nothing is here.",
            (MethodNotAllowed, Locale::Ko) => "허용되지 않는 요청 방식입니다.",
            (MethodNotAllowed, Locale::En) => "This method is not allowed here.",
            (CourseNotFound, Locale::Ko) => "강의를 찾을 수 없습니다.",
            (CourseNotFound, Locale::En) => "This course does not exist.",
            (OrderNotFound, Locale::Ko) => "주문을 찾을 수 없습니다.",
            (OrderNotFound, Locale::En) => "This order does not exist.",
            (OrderExpired, Locale::Ko) => "주문 유효 시간이 지났습니다. 다시 결제해 주세요.",
            (OrderExpired, Locale::En) => "This order has expired. Please start the payment again.",
            (AlreadyEnrolled, Locale::Ko) => "이미 수강 중인 강의입니다.",
            (AlreadyEnrolled, Locale::En) => "You are already enrolled in this course.",
            (AmountMismatch, Locale::Ko) => {
                "결제 금액이 주문 금액과 다릅니다. 결제가 진행되지 않았습니다."
            }
            (AmountMismatch, Locale::En) => {
                "The amount does not match the order. Nothing was charged."
            }
            (ConfirmInProgress, Locale::Ko) => {
                "결제를 확인하는 중입니다. 잠시 후 다시 확인해 주세요."
            }
            (ConfirmInProgress, Locale::En) => {
                "Your payment is being confirmed. Please check again in a moment."
            }
            (PaymentRejected, Locale::Ko) => {
                "결제가 거절되었습니다. 다른 결제 수단을 이용해 주세요."
            }
            (PaymentRejected, Locale::En) => {
                "The payment was declined. Please try another payment method."
            }
            (PgUnavailable, Locale::Ko) => {
                "결제사 연결이 원활하지 않습니다. 잠시 후 다시 시도해 주세요."
            }
            (PgUnavailable, Locale::En) => {
                "The payment provider is unavailable. Please try again shortly."
            }
            (PgTimeout, Locale::Ko) => {
                "결제 결과를 확인하는 중입니다. 중복 결제되지 않으니 잠시 후 다시 시도해 주세요."
            }
            (PgTimeout, Locale::En) => {
                "We are still checking your payment. You will not be charged twice; please try again shortly."
            }
            (PaymentsPaused, Locale::Ko) => {
                "결제가 일시 중단되었습니다. 잠시 후 다시 시도해 주세요."
            }
            (PaymentsPaused, Locale::En) => {
                "Payments are paused for a moment. Please try again later."
            }
            (IdempotencyKeyReused, Locale::Ko) => "같은 요청 키가 다른 요청에 사용되었습니다.",
            (IdempotencyKeyReused, Locale::En) => {
                "This Idempotency-Key was already used for a different request."
            }
            (PaymentNotFound, Locale::Ko) => "결제를 찾을 수 없습니다.",
            (PaymentNotFound, Locale::En) => "This payment does not exist.",
            (RefundNotAllowed, Locale::Ko) => {
                "환불할 수 없는 결제이거나 환불 가능 금액을 초과했습니다."
            }
            (RefundNotAllowed, Locale::En) => "This payment cannot be refunded by that amount.",
            (OrderNotCancelable, Locale::Ko) => {
                "결제가 완료된 주문은 취소할 수 없습니다. 환불을 요청해 주세요."
            }
            (OrderNotCancelable, Locale::En) => {
                "This order is paid and cannot be canceled; refund it instead."
            }
            (EnrollmentNotFound, Locale::Ko) => "수강 정보를 찾을 수 없습니다.",
            (EnrollmentNotFound, Locale::En) => "This enrollment does not exist.",
            (NotEnrolled, Locale::Ko) => "수강 중인 강의가 아닙니다.",
            (NotEnrolled, Locale::En) => "You are not enrolled in this course.",
            (AttemptNotFound, Locale::Ko) => "시험 응시 기록을 찾을 수 없습니다.",
            (AttemptNotFound, Locale::En) => "This exam attempt does not exist.",
            (AttemptAlreadySubmitted, Locale::Ko) => "이미 제출한 시험입니다.",
            (AttemptAlreadySubmitted, Locale::En) => "This exam attempt was already submitted.",
            (AttemptLimitReached, Locale::Ko) => "응시 가능 횟수를 모두 사용했습니다.",
            (AttemptLimitReached, Locale::En) => "You have used all attempts for this exam.",
            (TooManyOpenOrders, Locale::Ko) => {
                "결제를 기다리는 주문이 너무 많습니다. 진행 중인 결제를 마치거나 잠시 후 다시 시도해 주세요."
            }
            (TooManyOpenOrders, Locale::En) => {
                "You have too many unpaid orders. Finish a payment in progress or try again later."
            }
            (WebhookInvalidSig, Locale::Ko) => "웹훅 서명이 올바르지 않습니다.",
            (WebhookInvalidSig, Locale::En) => "The webhook signature is not valid.",
            (WebhookReplayed, Locale::Ko) => "이미 처리된 웹훅 서명입니다.",
            (WebhookReplayed, Locale::En) => "This webhook signature was already used.",
            (RateLimited, Locale::Ko) => "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.",
            (RateLimited, Locale::En) => "Too many requests. Please wait a moment and try again.",
            (ServiceUnavailable, Locale::Ko) => {
                "서비스를 일시적으로 사용할 수 없습니다. 잠시 후 다시 시도해 주세요."
            }
            (ServiceUnavailable, Locale::En) => {
                "The service is temporarily unavailable. Please try again shortly."
            }
            (RequestTimeout, Locale::Ko) => {
                "요청 처리 시간이 초과되었습니다. 잠시 후 다시 시도해 주세요."
            }
            (RequestTimeout, Locale::En) => "The request took too long. Please try again shortly.",
            (Internal, Locale::Ko) => "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해 주세요.",
            (Internal, Locale::En) => "Something went wrong on our side. Please try again shortly.",
        }
    }
}

impl From<ErrorCode> for &'static str {
    fn from(c: ErrorCode) -> &'static str {
        c.as_str()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_complete_and_unique() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert!(code.as_str().starts_with("E_"));
            let status = code.http_status();
            assert!((400..600).contains(&status));
            for locale in Locale::ALL {
                assert!(!code.message(*locale).is_empty());
            }
            assert_ne!(code.message(Locale::Ko), code.message(Locale::En));
        }
        assert_eq!(seen.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn contract_statuses() {
        // Fixed by the HTTP contract (docs/api.md): clients and acceptance tests depend on these.
        assert_eq!(ErrorCode::AmountMismatch.http_status(), 400);
        assert_eq!(ErrorCode::PaymentRejected.http_status(), 402);
        assert_eq!(ErrorCode::OrderExpired.http_status(), 410);
        assert_eq!(ErrorCode::IdempotencyKeyReused.http_status(), 422);
        assert_eq!(ErrorCode::PgTimeout.http_status(), 504);
        assert!(ErrorCode::PgUnavailable.retryable());
        assert!(!ErrorCode::AmountMismatch.retryable());
    }
}
