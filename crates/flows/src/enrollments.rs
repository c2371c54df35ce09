//! Orders and enrollments as their owners read them.

use crate::App;
use crate::error::{Error, Result};
use crate::settle::{SettleSource, resolve_order};
use domain::{EnrollmentId, ErrorCode, OrderId, UserId};
use store::{Enrollment, Order};

/// `GET /v1/orders/{id}`: the owner's order, settled with the provider first when still open,
/// so a buyer who closed the tab right after approving finds the enrollment.
pub async fn get_order(app: &App, user: UserId, order_id: &OrderId) -> Result<Order> {
    crate::context::record(|f| {
        f.user_id = Some(user.to_string());
        f.order_id = Some(order_id.to_string());
    });
    let order = app
        .store
        .get_order(order_id)
        .await?
        .ok_or(Error::new(ErrorCode::OrderNotFound))?;
    if order.user_id != user {
        return Err(Error::new(ErrorCode::Forbidden));
    }
    let order = resolve_order(app, order, SettleSource::OwnerRead).await?;
    crate::context::record(|f| {
        f.course_id = Some(order.course_id.to_string());
        f.status = Some(order.status.to_string());
        f.enrollment_id = order.enrollment_id.map(|e| e.to_string());
    });
    Ok(order)
}

pub async fn my_enrollments(app: &App, user: UserId) -> Result<Vec<Enrollment>> {
    crate::context::record(|f| f.user_id = Some(user.to_string()));
    Ok(app.store.list_enrollments(user).await?)
}

pub async fn get_enrollment(app: &App, user: UserId, id: EnrollmentId) -> Result<Enrollment> {
    crate::context::record(|f| {
        f.user_id = Some(user.to_string());
        f.enrollment_id = Some(id.to_string());
    });
    let e = app
        .store
        .get_enrollment(id)
        .await?
        .ok_or(Error::new(ErrorCode::EnrollmentNotFound))?;
    if e.user_id != user {
        return Err(Error::new(ErrorCode::Forbidden));
    }
    Ok(e)
}
