//! The flows' one error type. Flows return it; the HTTP layer renders it as problem+json in
//! exactly one place (`http::problem` in coursepay-api). Its code comes from the domain catalog, so the
//! status, the retryable flag and the translated message are never decided here.

use domain::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    /// For the client: what was wrong (names the field for E_INVALID_REQUEST). Never secrets.
    pub detail: Option<String>,
    /// Toss's error code for E_PAYMENT_REJECTED and provider failures.
    pub provider_code: Option<String>,
    /// Seconds, for 429/503.
    pub retry_after: Option<u64>,
    /// For the log only: the underlying cause of an internal error.
    pub internal: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            detail: None,
            provider_code: None,
            retry_after: None,
            internal: None,
        }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn with_provider_code(mut self, code: impl Into<String>) -> Self {
        self.provider_code = Some(code.into());
        self
    }
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(ErrorCode::Internal);
        e.internal = Some(cause.to_string());
        e
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest).with_detail(detail)
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error::new(code)
    }
}

impl From<store::StoreError> for Error {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::AlreadyEnrolled => Error::new(ErrorCode::AlreadyEnrolled),
            store::StoreError::TooManyOpenOrders => Error::new(ErrorCode::TooManyOpenOrders),
            store::StoreError::Unavailable(cause) => {
                let mut err = Error::new(ErrorCode::ServiceUnavailable).with_retry_after(1);
                err.internal = Some(cause);
                err
            }
            other => Error::internal(other),
        }
    }
}

impl From<crate::auth::AuthError> for Error {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            crate::auth::AuthError::Unauthenticated => Error::new(ErrorCode::Unauthorized),
            crate::auth::AuthError::WrongRole => Error::new(ErrorCode::Forbidden),
        }
    }
}

impl From<domain::ParseError> for Error {
    fn from(e: domain::ParseError) -> Self {
        Error::invalid(e.to_string())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
