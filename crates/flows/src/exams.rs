//! Exam attempts: only an ENROLLED enrollment may start one (a refund revokes that), at most
//! `EXAM_MAX_ATTEMPTS` per course, each submitted once. The limit and the single submit are
//! enforced by the store under concurrency; this module checks ownership and maps outcomes to
//! the catalog's errors.

use crate::App;
use crate::error::{Error, Result};
use domain::{AttemptId, EnrollmentId, EnrollmentStatus, ErrorCode, UserId};
use store::{AttemptStart, AttemptSubmit, ExamAttempt};
use time::OffsetDateTime;

/// `POST /v1/enrollments/{id}/exam-attempts`.
pub async fn start_attempt(
    app: &App,
    user: UserId,
    enrollment_id: EnrollmentId,
) -> Result<ExamAttempt> {
    crate::context::record(|f| {
        f.user_id = Some(user.to_string());
        f.enrollment_id = Some(enrollment_id.to_string());
    });
    let enrollment = app
        .store
        .get_enrollment(enrollment_id)
        .await?
        .ok_or(Error::new(ErrorCode::EnrollmentNotFound))?;
    if enrollment.user_id != user {
        return Err(Error::new(ErrorCode::Forbidden));
    }
    crate::context::record(|f| f.course_id = Some(enrollment.course_id.to_string()));
    if enrollment.status != EnrollmentStatus::Enrolled {
        return Err(not_enrolled());
    }
    let max = app.config.exam_max_attempts;
    match app
        .store
        .start_attempt(
            enrollment_id,
            AttemptId::new(),
            max,
            OffsetDateTime::now_utc(),
        )
        .await?
    {
        AttemptStart::Started(attempt) => Ok(attempt),
        AttemptStart::EnrollmentNotFound => Err(Error::new(ErrorCode::EnrollmentNotFound)),
        // Refunded between the read above and the start.
        AttemptStart::NotEnrolled => Err(not_enrolled()),
        AttemptStart::LimitReached { used } => Err(Error::new(ErrorCode::AttemptLimitReached)
            .with_detail(format!(
                "{used} of {max} attempts for this course were used"
            ))),
    }
}

fn not_enrolled() -> Error {
    Error::new(ErrorCode::NotEnrolled).with_detail("the enrollment was refunded")
}

/// A score as the API takes it: an integer from 0 to 100.
pub fn parse_score(score: i64) -> Result<i32> {
    if (0..=100).contains(&score) {
        i32::try_from(score).map_err(|_| Error::invalid("score: must be an integer from 0 to 100"))
    } else {
        Err(Error::invalid("score: must be an integer from 0 to 100"))
    }
}

/// `POST /v1/exam-attempts/{id}/submit`: once per attempt.
pub async fn submit(
    app: &App,
    user: UserId,
    attempt_id: AttemptId,
    score: i32,
) -> Result<ExamAttempt> {
    crate::context::record(|f| f.user_id = Some(user.to_string()));
    let attempt = app
        .store
        .get_attempt(attempt_id)
        .await?
        .ok_or(Error::new(ErrorCode::AttemptNotFound))?;
    if attempt.user_id != user {
        return Err(Error::new(ErrorCode::Forbidden));
    }
    crate::context::record(|f| f.enrollment_id = Some(attempt.enrollment_id.to_string()));
    if attempt.submitted_at.is_some() {
        return Err(Error::new(ErrorCode::AttemptAlreadySubmitted));
    }
    match app
        .store
        .submit_attempt(attempt_id, score, OffsetDateTime::now_utc())
        .await?
    {
        AttemptSubmit::Submitted(a) => Ok(a),
        AttemptSubmit::AlreadySubmitted => Err(Error::new(ErrorCode::AttemptAlreadySubmitted)),
        AttemptSubmit::NotFound => Err(Error::new(ErrorCode::AttemptNotFound)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_0_to_100() {
        assert_eq!(parse_score(0).ok(), Some(0));
        assert_eq!(parse_score(100).ok(), Some(100));
        for bad in [-1, 101, i64::MAX] {
            let e = parse_score(bad).err().map(|e| e.code);
            assert_eq!(e, Some(ErrorCode::InvalidRequest), "{bad}");
        }
    }
}
