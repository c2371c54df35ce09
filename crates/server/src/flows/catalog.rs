//! Courses: admin create, public list/get.

use crate::App;
use crate::error::{Error, Result};
use domain::{CourseId, ErrorCode, Money};
use store::{Course, NewCourse};
use time::OffsetDateTime;

/// A course price as the API allows it: 100..=100,000,000 KRW.
pub fn parse_price(won: i64) -> Result<Money> {
    if !(100..=100_000_000).contains(&won) {
        return Err(Error::invalid(
            "price: must be an integer from 100 to 100000000",
        ));
    }
    Money::new(won).map_err(|e| Error::invalid(format!("price: {e}")))
}

pub fn parse_title(title: &str) -> Result<String> {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > 200 {
        return Err(Error::invalid("title: must be 1 to 200 characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(Error::invalid("title: must not contain control characters"));
    }
    Ok(t.to_owned())
}

pub async fn create_course(app: &App, title: String, price: Money) -> Result<Course> {
    let course = app
        .store
        .create_course(NewCourse {
            id: CourseId::new(),
            title,
            price,
            now: OffsetDateTime::now_utc(),
        })
        .await?;
    crate::context::record(|f| f.course_id = Some(course.id.to_string()));
    Ok(course)
}

pub async fn get_course(app: &App, id: CourseId) -> Result<Course> {
    match app.store.get_course(id).await? {
        Some(c) if c.status == "PUBLISHED" => Ok(c),
        _ => Err(Error::new(ErrorCode::CourseNotFound)),
    }
}

pub async fn list_courses(app: &App) -> Result<Vec<Course>> {
    Ok(app.store.list_courses().await?)
}
