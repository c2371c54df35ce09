//! The HTTP layer's error: a [`flows::Error`] on its way to becoming problem+json, which
//! happens in exactly one place ([`crate::http::problem`]). It is a newtype only because the
//! rendering trait (axum's `IntoResponse`) and the flows' error live in different crates; the
//! code, detail and retry hint are the flow error's own (reached through `Deref`).

use domain::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub flows::Error);

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode) -> Self {
        Self(flows::Error::new(code))
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self(flows::Error::invalid(detail))
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self(flows::Error::internal(cause))
    }
    pub fn with_detail(self, detail: impl Into<String>) -> Self {
        Self(self.0.with_detail(detail))
    }
    pub fn with_retry_after(self, secs: u64) -> Self {
        Self(self.0.with_retry_after(secs))
    }
}

impl std::ops::Deref for Error {
    type Target = flows::Error;
    fn deref(&self) -> &flows::Error {
        &self.0
    }
}

impl std::ops::DerefMut for Error {
    fn deref_mut(&mut self) -> &mut flows::Error {
        &mut self.0
    }
}

/// Everything a flow error can be made from converts here through it, so `?` works in a
/// handler on the same values as in a flow.
macro_rules! via_flow_error {
    ($($from:ty),* $(,)?) => {$(
        impl From<$from> for Error {
            fn from(e: $from) -> Self {
                Self(flows::Error::from(e))
            }
        }
    )*};
}
via_flow_error!(
    flows::Error,
    ErrorCode,
    store::StoreError,
    flows::auth::AuthError,
    domain::ParseError,
);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {}
