//! The one error catalog. Every error a client can see is an [`ErrorCode`]: its HTTP status,
//! whether retrying can help, and a user-facing message in every locale are written here once,
//! in one row per code, so adding a code without a status or a translation does not compile.
//! The HTTP layer turns a code into problem+json; the i18n endpoint serves [`ErrorCode::message`];
//! clients branch on [`ErrorCode::as_str`].

use serde::Serialize;
use std::fmt;

/// Declares [`ErrorCode`] from one table: each code's wire string, HTTP status, whether
/// retrying can help and its message in every locale, side by side. [`ErrorCode::ALL`] holds
/// every variant by construction, so code that iterates the catalog (the i18n table, the metrics
/// created at startup) cannot miss a code added later, and a row missing a field does not
/// compile.
macro_rules! error_codes {
    ($(
        $variant:ident {
            code: $code:literal, status: $status:literal, retryable: $retryable:literal,
            ko: $ko:literal,
            en: $en:literal $(,)?
        }
    ),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(into = "&'static str")]
        pub enum ErrorCode {
            $($variant),+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The code clients branch on (`E_…`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code),+
                }
            }

            pub fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status),+
                }
            }

            /// Whether the same request may succeed later. Clients show a retry button on these.
            pub fn retryable(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $retryable),+
                }
            }

            /// What a buyer or operator reads. Written for the person in front of the payment
            /// page.
            pub fn message(self, locale: Locale) -> &'static str {
                match (self, locale) {
                    $(
                        (ErrorCode::$variant, Locale::Ko) => $ko,
                        (ErrorCode::$variant, Locale::En) => $en,
                    )+
                }
            }
        }
    };
}

error_codes! {
    InvalidRequest {
        code: "E_INVALID_REQUEST", status: 400, retryable: false,
        ko: "요청 형식이 올바르지 않습니다.",
        en: "The request is not valid.",
    },
    PayloadTooLarge {
        code: "E_PAYLOAD_TOO_LARGE", status: 413, retryable: false,
        ko: "요청 본문이 너무 큽니다.",
        en: "The request body is too large.",
    },
    Unauthorized {
        code: "E_UNAUTHORIZED", status: 401, retryable: false,
        ko: "로그인이 필요합니다. 다시 로그인해 주세요.",
        en: "Please sign in again.",
    },
    Forbidden {
        code: "E_FORBIDDEN", status: 403, retryable: false,
        ko: "이 작업을 수행할 권한이 없습니다.",
        en: "You are not allowed to do this.",
    },
    NotFound {
        code: "E_NOT_FOUND", status: 404, retryable: false,
        ko: "요청한 주소를 찾을 수 없습니다.",
        en: "Nothing is here.",
    },
    MethodNotAllowed {
        code: "E_METHOD_NOT_ALLOWED", status: 405, retryable: false,
        ko: "허용되지 않는 요청 방식입니다.",
        en: "This method is not allowed here.",
    },
    CourseNotFound {
        code: "E_COURSE_NOT_FOUND", status: 404, retryable: false,
        ko: "강의를 찾을 수 없습니다.",
        en: "This course does not exist.",
    },
    OrderNotFound {
        code: "E_ORDER_NOT_FOUND", status: 404, retryable: false,
        ko: "주문을 찾을 수 없습니다.",
        en: "This order does not exist.",
    },
    OrderExpired {
        code: "E_ORDER_EXPIRED", status: 410, retryable: false,
        ko: "주문 유효 시간이 지났습니다. 다시 결제해 주세요.",
        en: "This order has expired. Please start the payment again.",
    },
    AlreadyEnrolled {
        code: "E_ALREADY_ENROLLED", status: 409, retryable: false,
        ko: "이미 수강 중인 강의입니다.",
        en: "You are already enrolled in this course.",
    },
    AmountMismatch {
        code: "E_AMOUNT_MISMATCH", status: 400, retryable: false,
        ko: "결제 금액이 주문 금액과 다릅니다. 결제가 진행되지 않았습니다.",
        en: "The amount does not match the order. Nothing was charged.",
    },
    ConfirmInProgress {
        code: "E_CONFIRM_IN_PROGRESS", status: 409, retryable: true,
        ko: "결제를 확인하는 중입니다. 잠시 후 다시 확인해 주세요.",
        en: "Your payment is being confirmed. Please check again in a moment.",
    },
    PaymentRejected {
        code: "E_PAYMENT_REJECTED", status: 402, retryable: false,
        ko: "결제가 거절되었습니다. 다른 결제 수단을 이용해 주세요.",
        en: "The payment was declined. Please try another payment method.",
    },
    PgUnavailable {
        code: "E_PG_UNAVAILABLE", status: 503, retryable: true,
        ko: "결제사 연결이 원활하지 않습니다. 잠시 후 다시 시도해 주세요.",
        en: "The payment provider is unavailable. Please try again shortly.",
    },
    PgTimeout {
        code: "E_PG_TIMEOUT", status: 504, retryable: true,
        ko: "결제 결과를 확인하는 중입니다. 중복 결제되지 않으니 잠시 후 다시 시도해 주세요.",
        en: "We are still checking your payment. You will not be charged twice; please try again shortly.",
    },
    PaymentsPaused {
        code: "E_PAYMENTS_PAUSED", status: 503, retryable: true,
        ko: "결제가 일시 중단되었습니다. 잠시 후 다시 시도해 주세요.",
        en: "Payments are paused for a moment. Please try again later.",
    },
    IdempotencyKeyReused {
        code: "E_IDEMPOTENCY_KEY_REUSED", status: 422, retryable: false,
        ko: "같은 요청 키가 다른 요청에 사용되었습니다.",
        en: "This Idempotency-Key was already used for a different request.",
    },
    PaymentNotFound {
        code: "E_PAYMENT_NOT_FOUND", status: 404, retryable: false,
        ko: "결제를 찾을 수 없습니다.",
        en: "This payment does not exist.",
    },
    RefundNotAllowed {
        code: "E_REFUND_NOT_ALLOWED", status: 409, retryable: false,
        ko: "환불할 수 없는 결제이거나 환불 가능 금액을 초과했습니다.",
        en: "This payment cannot be refunded by that amount.",
    },
    OrderNotCancelable {
        code: "E_ORDER_NOT_CANCELABLE", status: 409, retryable: false,
        ko: "결제가 완료된 주문은 취소할 수 없습니다. 환불을 요청해 주세요.",
        en: "This order is paid and cannot be canceled; refund it instead.",
    },
    EnrollmentNotFound {
        code: "E_ENROLLMENT_NOT_FOUND", status: 404, retryable: false,
        ko: "수강 정보를 찾을 수 없습니다.",
        en: "This enrollment does not exist.",
    },
    NotEnrolled {
        code: "E_NOT_ENROLLED", status: 403, retryable: false,
        ko: "수강 중인 강의가 아닙니다.",
        en: "You are not enrolled in this course.",
    },
    AttemptNotFound {
        code: "E_ATTEMPT_NOT_FOUND", status: 404, retryable: false,
        ko: "시험 응시 기록을 찾을 수 없습니다.",
        en: "This exam attempt does not exist.",
    },
    AttemptAlreadySubmitted {
        code: "E_ATTEMPT_ALREADY_SUBMITTED", status: 409, retryable: false,
        ko: "이미 제출한 시험입니다.",
        en: "This exam attempt was already submitted.",
    },
    AttemptLimitReached {
        code: "E_ATTEMPT_LIMIT_REACHED", status: 409, retryable: false,
        ko: "응시 가능 횟수를 모두 사용했습니다.",
        en: "You have used all attempts for this exam.",
    },
    TooManyOpenOrders {
        code: "E_TOO_MANY_OPEN_ORDERS", status: 409, retryable: false,
        ko: "결제를 기다리는 주문이 너무 많습니다. 진행 중인 결제를 마치거나 잠시 후 다시 시도해 주세요.",
        en: "You have too many unpaid orders. Finish a payment in progress or try again later.",
    },
    WebhookInvalidSig {
        code: "E_WEBHOOK_INVALID_SIG", status: 401, retryable: false,
        ko: "웹훅 서명이 올바르지 않습니다.",
        en: "The webhook signature is not valid.",
    },
    WebhookReplayed {
        code: "E_WEBHOOK_REPLAYED", status: 409, retryable: false,
        ko: "이미 처리된 웹훅 서명입니다.",
        en: "This webhook signature was already used.",
    },
    RateLimited {
        code: "E_RATE_LIMITED", status: 429, retryable: true,
        ko: "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.",
        en: "Too many requests. Please wait a moment and try again.",
    },
    ServiceUnavailable {
        code: "E_SERVICE_UNAVAILABLE", status: 503, retryable: true,
        ko: "서비스를 일시적으로 사용할 수 없습니다. 잠시 후 다시 시도해 주세요.",
        en: "The service is temporarily unavailable. Please try again shortly.",
    },
    RequestTimeout {
        code: "E_REQUEST_TIMEOUT", status: 503, retryable: true,
        ko: "요청 처리 시간이 초과되었습니다. 잠시 후 다시 시도해 주세요.",
        en: "The request took too long. Please try again shortly.",
    },
    Internal {
        code: "E_INTERNAL", status: 500, retryable: true,
        ko: "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해 주세요.",
        en: "Something went wrong on our side. Please try again shortly.",
    },
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
    /// The English message. (problem+json's `title` is in the request's language: Korean by
    /// default, English on `Accept-Language: en`.)
    pub fn title(self) -> &'static str {
        self.message(Locale::En)
    }

    /// The i18n key the storefront looks up (seed §8: `ui.payment.error.*`).
    pub fn i18n_key(self) -> String {
        format!("ui.payment.error.{}", self.as_str())
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
