//! Extractors whose rejections are the app's own errors: bearer-token principals and a JSON
//! body reader that answers 413/400 with a problem+json naming the field.

use crate::App;
use crate::auth::Principal;
use crate::error::Error;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use domain::{ErrorCode, FreeText, Money, TextField, UserId};
use serde_json::{Map, Value};

fn bearer(parts: &Parts) -> Result<&str, Error> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(Error::new(ErrorCode::Unauthorized))?
        .to_str()
        .map_err(|_| Error::new(ErrorCode::Unauthorized))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(Error::new(ErrorCode::Unauthorized))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::new(ErrorCode::Unauthorized));
    }
    Ok(token.trim())
}

async fn principal<S>(parts: &Parts, state: &S) -> Result<Principal, Error>
where
    App: FromRef<S>,
{
    let app = App::from_ref(state);
    Ok(app.jwt.verify(bearer(parts)?).await?)
}

/// An authenticated end user (`role: authenticated`).
pub struct AuthUser(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for AuthUser
where
    App: FromRef<S>,
{
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match principal(parts, state).await? {
            Principal::User(u) => {
                crate::context::record(|f| f.user_id = Some(u.to_string()));
                Ok(AuthUser(u))
            }
            Principal::Service => Err(Error::new(ErrorCode::Forbidden)),
        }
    }
}

/// The service role (Supabase's service-role key or a token with `role: service_role`).
pub struct ServiceRole;

impl<S: Send + Sync> FromRequestParts<S> for ServiceRole
where
    App: FromRef<S>,
{
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match principal(parts, state).await? {
            Principal::Service => Ok(ServiceRole),
            Principal::User(_) => Err(Error::new(ErrorCode::Forbidden)),
        }
    }
}

/// A JSON object body. Too large → 413 E_PAYLOAD_TOO_LARGE; not a JSON object → 400.
/// Fields are then read with the typed getters, each naming its field in the error.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Error;
    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::new(ErrorCode::PayloadTooLarge).with_detail("body: larger than 64 KiB")
            } else {
                Error::invalid("body: could not be read")
            }
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(Error::invalid("body: must be a JSON object")),
            Err(e) => Err(Error::invalid(format!(
                "body: malformed JSON ({})",
                e.classify_name()
            ))),
        }
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}
impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "invalid data",
            serde_json::error::Category::Eof => "unexpected end",
        }
    }
}

impl JsonObject {
    pub fn str(&self, field: &str) -> Result<&str, Error> {
        match self.0.get(field) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => Err(Error::invalid(format!("{field}: is required"))),
            Some(_) => Err(Error::invalid(format!("{field}: must be a string"))),
        }
    }

    /// A free-text field (see [`domain::text`]): required, trimmed, within the field's limit,
    /// no control characters; any other value is a 400 naming the field.
    pub fn text(&self, field: TextField) -> Result<FreeText, Error> {
        FreeText::parse(field, self.str(field.name())?).map_err(|e| Error::invalid(e.to_string()))
    }

    pub fn opt_str(&self, field: &str) -> Result<Option<&str>, Error> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::invalid(format!("{field}: must be a string"))),
        }
    }

    /// An integer (no fraction, no exponent beyond an exact integer, within i64).
    pub fn int(&self, field: &str) -> Result<i64, Error> {
        match self.0.get(field) {
            None | Some(Value::Null) => Err(Error::invalid(format!("{field}: is required"))),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                if n.is_u64() {
                    Error::invalid(format!("{field}: out of range"))
                } else {
                    Error::invalid(format!("{field}: must be an integer"))
                }
            }),
            Some(_) => Err(Error::invalid(format!("{field}: must be an integer"))),
        }
    }

    pub fn opt_int(&self, field: &str) -> Result<Option<i64>, Error> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.int(field).map(Some),
        }
    }

    /// A positive KRW amount.
    pub fn amount(&self, field: &str) -> Result<Money, Error> {
        let won = self.int(field)?;
        if won <= 0 {
            return Err(Error::invalid(format!(
                "{field}: must be a positive integer"
            )));
        }
        Money::new(won).map_err(|e| Error::invalid(format!("{field}: {e}")))
    }
}
