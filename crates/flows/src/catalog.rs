//! Courses: admin create, public list/get.

use crate::App;
use crate::error::{Error, Result};
use domain::{CourseId, ErrorCode, FreeText, Money};
use store::{Course, NewCourse};
use time::OffsetDateTime;

/// A course price as docs/api.md allows it: 100..=100,000,000 KRW.
pub fn parse_price(won: i64) -> Result<Money> {
    if !(100..=100_000_000).contains(&won) {
        return Err(Error::invalid(
            "price: must be an integer from 100 to 100000000",
        ));
    }
    Money::new(won).map_err(|e| Error::invalid(format!("price: {e}")))
}

pub async fn create_course(app: &App, title: FreeText, price: Money) -> Result<Course> {
    let course = app
        .store
        .create_course(NewCourse {
            id: CourseId::new(),
            title: title.into_string(),
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
