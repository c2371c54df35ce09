//! Free text a person typed: course titles, refund and pause reasons. Every such field is a
//! [`FreeText`], parsed once at the edge, so what reaches the store, Toss and the logs is the
//! same on every store: trimmed, non-empty, within its field's limit and free of control
//! characters. (PostgreSQL refuses a NUL byte in `text` while SQLite stores it; a control
//! character in a log line or a Toss `cancelReason` is never intended. Refusing them at parse
//! time gives one answer, a 400 naming the field, whatever the store.)
//!
//! Each field and its limit are stated once, in [`TextField`].

use std::fmt;

/// The free-text fields the API accepts, each with its JSON name and length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextField {
    /// `POST /v1/admin/courses` `title` (also the source of the order name Toss shows).
    CourseTitle,
    /// `POST /v1/admin/payments/{paymentId}/refund` `reason` (sent to Toss as `cancelReason`,
    /// which Toss limits to 200 characters).
    RefundReason,
    /// `POST /v1/admin/payments/pause` `reason`.
    PauseReason,
}

impl TextField {
    pub const ALL: &'static [TextField] = &[
        TextField::CourseTitle,
        TextField::RefundReason,
        TextField::PauseReason,
    ];

    /// The field's name in request bodies and in error details.
    pub fn name(self) -> &'static str {
        match self {
            TextField::CourseTitle => "title",
            TextField::RefundReason | TextField::PauseReason => "reason",
        }
    }

    /// Most characters (Unicode scalar values) the field holds, after trimming.
    pub fn max_chars(self) -> usize {
        match self {
            TextField::CourseTitle => 200,
            TextField::RefundReason => 200,
            TextField::PauseReason => 500,
        }
    }
}

/// Why a free-text value was refused; displays as `"<field>: <problem>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextError {
    pub field: TextField,
    pub problem: TextProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextProblem {
    /// Empty or only whitespace, or longer than the field allows.
    Length,
    /// Contains NUL or another control character (Unicode category Cc: U+0000–U+001F,
    /// U+007F–U+009F), tabs and newlines inside the text included.
    ControlCharacter,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            TextProblem::Length => write!(
                f,
                "{}: must be 1 to {} characters",
                self.field.name(),
                self.field.max_chars()
            ),
            TextProblem::ControlCharacter => write!(
                f,
                "{}: must not contain control characters (such as NUL)",
                self.field.name()
            ),
        }
    }
}

impl std::error::Error for TextError {}

/// Trimmed, 1..=`field.max_chars()` characters, no control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FreeText(String);

impl FreeText {
    pub fn parse(field: TextField, raw: &str) -> Result<FreeText, TextError> {
        let text = raw.trim();
        let err = |problem| TextError { field, problem };
        // Control characters first: a NUL is reported as such even in an over-long value.
        if text.chars().any(char::is_control) {
            return Err(err(TextProblem::ControlCharacter));
        }
        let chars = text.chars().count();
        if chars == 0 || chars > field.max_chars() {
            return Err(err(TextProblem::Length));
        }
        Ok(FreeText(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for FreeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for FreeText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_keeps_unicode() {
        let t = FreeText::parse(TextField::CourseTitle, "  러스트 입문 — Rust 101 🦀 ").unwrap();
        assert_eq!(t.as_str(), "러스트 입문 — Rust 101 🦀");
    }

    #[test]
    fn refuses_every_control_character_in_every_field() {
        let controls: Vec<char> = (0u32..0x20)
            .chain(0x7f..0xa0)
            .filter_map(char::from_u32)
            .collect();
        for field in TextField::ALL {
            for c in &controls {
                let e = FreeText::parse(*field, &format!("a{c}b")).unwrap_err();
                assert_eq!(e.problem, TextProblem::ControlCharacter, "{c:?}");
                assert!(e.to_string().starts_with(field.name()), "{e}");
            }
            // A trailing NUL is not whitespace: trimming does not hide it.
            let e = FreeText::parse(*field, "ok\0").unwrap_err();
            assert_eq!(e.problem, TextProblem::ControlCharacter);
        }
    }

    #[test]
    fn length_is_counted_in_characters_per_field() {
        for field in TextField::ALL {
            let max = field.max_chars();
            assert!(FreeText::parse(*field, &"가".repeat(max)).is_ok());
            let e = FreeText::parse(*field, &"가".repeat(max + 1)).unwrap_err();
            assert_eq!(e.problem, TextProblem::Length);
            assert_eq!(
                e.to_string(),
                format!("{}: must be 1 to {max} characters", field.name())
            );
            assert!(FreeText::parse(*field, " \t ").is_err());
        }
    }
}
