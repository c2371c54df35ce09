//! Checkout: the server prices the order. The client names a course, never an amount.

use crate::App;
use crate::error::{Error, Result};
use crate::event_ctx;
use domain::{CourseId, ErrorCode, OrderId, UserId};
use store::{NewOrder, Order};
use time::OffsetDateTime;

pub async fn checkout(app: &App, user: UserId, course_id: CourseId) -> Result<Order> {
    crate::context::record(|f| {
        f.user_id = Some(user.to_string());
        f.course_id = Some(course_id.to_string());
    });
    crate::ops::pause::ensure_not_paused(app).await?;
    let course = match app.store.get_course(course_id).await? {
        Some(c) if c.status == "PUBLISHED" => c,
        _ => return Err(Error::new(ErrorCode::CourseNotFound)),
    };
    let now = OffsetDateTime::now_utc();
    let order_name: String = course.title.chars().take(100).collect();
    let order = app
        .store
        .create_order(NewOrder {
            order_id: OrderId::generate(),
            user_id: user,
            course_id,
            amount: course.price,
            order_name,
            now,
            expires_at: now + app.config.order_ttl,
            ctx: event_ctx(format!("user:{user}")),
            max_open_per_user: Some(app.config.edge.max_open_orders_per_user).filter(|n| *n > 0),
        })
        .await?;
    crate::context::record(|f| {
        f.order_id = Some(order.order_id.to_string());
        f.status = Some(order.status.to_string());
    });
    Ok(order)
}
