//! The store conformance suite: every case runs against SQLite and PostgreSQL (the
//! `store::per_backend!` macro at the bottom generates `sqlite::<case>` and `postgres::<case>`).
//! PostgreSQL must be reachable (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1/test);
//! these tests fail rather than skip without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{
    AttemptId, CourseId, EnrollmentId, EnrollmentStatus, IdempotencyKey, Money, OrderId,
    OrderStatus, PaymentKey, PaymentStatus, RefundId, RefundStatus, UserId,
};
use sqlx::{PgPool, SqlitePool};
use std::collections::HashSet;
use std::sync::Arc;
use store::roundtrips::Counter;
use store::{
    AttemptStart, AttemptSubmit, Backend, Cancellation, ClaimOutcome, ClaimRequest, Course,
    DynStore, EventContext, KeyUse, NewCourse, NewOrder, NewRefund, Order, ProviderCancel, Refund,
    RefundBegin, Settled, Settlement, StoreError, testing,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

// --- fixtures ------------------------------------------------------------------------------

/// A store plus raw access to its pool, for the few checks the trait cannot express.
struct Db {
    store: DynStore,
    raw: Raw,
}

enum Raw {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

impl Db {
    async fn new(backend: Backend) -> Db {
        match backend {
            Backend::Sqlite => Db::sqlite().await,
            Backend::Postgres => Db::postgres().await,
        }
    }

    async fn sqlite() -> Db {
        let s = testing::sqlite_store().await;
        Db {
            raw: Raw::Sqlite(s.pool().clone()),
            store: Arc::new(s),
        }
    }

    async fn postgres() -> Db {
        let s = testing::postgres_store().await;
        Db {
            raw: Raw::Pg(s.pool().clone()),
            store: Arc::new(s),
        }
    }

    fn is_pg(&self) -> bool {
        self.store.backend() == Backend::Postgres
    }
}

impl Raw {
    async fn count(&self, sql: &'static str) -> i64 {
        match self {
            Raw::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    async fn exec(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        match self {
            Raw::Pg(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        }
    }

    async fn insert_exam_attempt(&self, enrollment: Uuid) -> Result<u64, sqlx::Error> {
        let sql = "INSERT INTO exam_attempts (id, enrollment_id, score, started_at)
                   VALUES ($1, $2, NULL, $3)";
        let at = datetime!(2026-03-01 10:00:00 UTC);
        match self {
            Raw::Pg(p) => sqlx::query(sql)
                .bind(Uuid::now_v7())
                .bind(enrollment)
                .bind(at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Raw::Sqlite(p) => sqlx::query(sql)
                .bind(Uuid::now_v7())
                .bind(enrollment)
                .bind(store::sqlite::ts(at))
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        }
    }

    async fn exec_uuid(&self, sql: &'static str, id: Uuid) -> Result<u64, sqlx::Error> {
        match self {
            Raw::Pg(p) => sqlx::query(sql)
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Raw::Sqlite(p) => sqlx::query(sql)
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        }
    }

    async fn exec_uuids(&self, sql: &'static str, a: Uuid, b: Uuid) -> Result<u64, sqlx::Error> {
        match self {
            Raw::Pg(p) => sqlx::query(sql)
                .bind(a)
                .bind(b)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Raw::Sqlite(p) => sqlx::query(sql)
                .bind(a)
                .bind(b)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        }
    }
}

/// The tests' clock: fixed, whole seconds, so values round-trip exactly on both backends.
fn t(minutes: i64) -> OffsetDateTime {
    datetime!(2026-03-01 09:00:00 UTC) + Duration::minutes(minutes)
}

fn ctx(actor: &str, minutes: i64) -> EventContext {
    EventContext::new(actor, Some(format!("req-{minutes}")), t(minutes))
}

fn won(v: i64) -> Money {
    Money::new(v).unwrap()
}

fn key(s: &str) -> PaymentKey {
    PaymentKey::parse(s).unwrap()
}

async fn course(db: &Db, price: i64) -> Course {
    db.store
        .create_course(NewCourse {
            id: CourseId::new(),
            title: "Rust for payments".to_owned(),
            price: won(price),
            now: t(0),
        })
        .await
        .unwrap()
}

/// A PENDING order created at `t(minutes)`, expiring 30 minutes later.
async fn order_at(db: &Db, user: UserId, course: &Course, minutes: i64) -> Order {
    db.store
        .create_order(NewOrder {
            order_id: OrderId::generate(),
            user_id: user,
            course_id: course.id,
            amount: course.price,
            order_name: course.title.clone(),
            now: t(minutes),
            expires_at: t(minutes + 30),
            ctx: ctx(&format!("user:{}", user.0), minutes),
            max_open_per_user: None,
        })
        .await
        .unwrap()
}

async fn order(db: &Db, user: UserId, course: &Course) -> Order {
    order_at(db, user, course, 0).await
}

fn claim_req(order: &Order, payment_key: &str, minutes: i64) -> ClaimRequest {
    ClaimRequest {
        order_id: order.order_id.clone(),
        user_id: order.user_id,
        amount: order.amount,
        payment_key: key(payment_key),
        ctx: ctx(&format!("user:{}", order.user_id.0), minutes),
    }
}

fn settlement(order: &Order, payment_key: &str, source: &str, minutes: i64) -> Settlement {
    Settlement {
        order_id: order.order_id.clone(),
        payment_key: key(payment_key),
        amount: order.amount,
        status: PaymentStatus::Done,
        method: Some("카드".to_owned()),
        approved_at: t(minutes),
        secret: None,
        source: source.to_owned(),
        ctx: ctx(source, minutes),
    }
}

async fn claim(db: &Db, order: &Order, payment_key: &str, minutes: i64) -> Order {
    match db
        .store
        .claim_order(claim_req(order, payment_key, minutes))
        .await
        .unwrap()
    {
        ClaimOutcome::Claimed(o) => o,
        other => panic!("expected Claimed, got {other:?}"),
    }
}

/// Claim and settle: the happy path of a confirm.
async fn buy(db: &Db, order: &Order, payment_key: &str) -> Settled {
    claim(db, order, payment_key, 1).await;
    db.store
        .settle(settlement(order, payment_key, "confirm", 2))
        .await
        .unwrap()
}

fn constraint(err: StoreError) -> String {
    match err {
        StoreError::Constraint(name) => name,
        other => panic!("expected a constraint error, got {other:?}"),
    }
}

// --- cases ---------------------------------------------------------------------------------

async fn ready_and_migrate_twice(db: Db) {
    db.store.ready().await.unwrap();
    db.store.migrate().await.unwrap();
    db.store.ready().await.unwrap();
}

async fn courses_crud(db: Db) {
    assert!(db.store.list_courses().await.unwrap().is_empty());
    let first = course(&db, 10_000).await;
    let second = db
        .store
        .create_course(NewCourse {
            id: CourseId::new(),
            title: "Later course".to_owned(),
            price: won(55_000),
            now: t(5),
        })
        .await
        .unwrap();
    assert_eq!(first.status, "PUBLISHED");
    assert_eq!(first.price, won(10_000));
    assert_eq!(first.created_at, t(0));

    let listed = db.store.list_courses().await.unwrap();
    assert_eq!(listed, vec![first.clone(), second.clone()]);
    assert_eq!(
        db.store.get_course(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(db.store.get_course(CourseId::new()).await.unwrap(), None);

    // The price range is the database's too.
    let cheap = db
        .store
        .create_course(NewCourse {
            id: CourseId::new(),
            title: "Too cheap".to_owned(),
            price: won(99),
            now: t(0),
        })
        .await
        .unwrap_err();
    assert_eq!(constraint(cheap), "courses_price_check");
    let dup = db
        .store
        .create_course(NewCourse {
            id: first.id,
            title: "Same id".to_owned(),
            price: won(1_000),
            now: t(0),
        })
        .await
        .unwrap_err();
    assert_eq!(constraint(dup), "courses_pkey");
}

async fn create_order_refuses_already_enrolled(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();
    let o = order(&db, user, &c).await;
    assert_eq!(o.status, OrderStatus::Pending);
    assert_eq!(o.amount, won(10_000));
    assert_eq!(o.expires_at, t(30));
    assert_eq!(
        db.store.get_order(&o.order_id).await.unwrap(),
        Some(o.clone())
    );
    buy(&db, &o, "pk_enrolled_1").await;

    let again = db
        .store
        .create_order(NewOrder {
            order_id: OrderId::generate(),
            user_id: user,
            course_id: c.id,
            amount: c.price,
            order_name: c.title.clone(),
            now: t(10),
            expires_at: t(40),
            ctx: ctx("user:x", 10),
            max_open_per_user: None,
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyEnrolled)),
        "{again:?}"
    );

    // Another user may still buy it.
    order(&db, UserId::new(), &c).await;

    // An unknown course is refused by the foreign key.
    let unknown = db
        .store
        .create_order(NewOrder {
            order_id: OrderId::generate(),
            user_id: user,
            course_id: CourseId::new(),
            amount: won(1_000),
            order_name: "ghost".to_owned(),
            now: t(0),
            expires_at: t(30),
            ctx: ctx("user:x", 0),
            max_open_per_user: None,
        })
        .await
        .unwrap_err();
    let expected = if db.is_pg() {
        "orders_course_id_fkey"
    } else {
        store::SQLITE_FOREIGN_KEY
    };
    assert_eq!(constraint(unknown), expected);

    // The same order id twice.
    let dup = db
        .store
        .create_order(NewOrder {
            order_id: o.order_id.clone(),
            user_id: UserId::new(),
            course_id: c.id,
            amount: c.price,
            order_name: c.title.clone(),
            now: t(0),
            expires_at: t(30),
            ctx: ctx("user:x", 0),
            max_open_per_user: None,
        })
        .await
        .unwrap_err();
    assert_eq!(constraint(dup), "orders_pkey");
}

async fn claim_happy_path_then_not_claimed(db: Db) {
    let c = course(&db, 10_000).await;
    let o = order(&db, UserId::new(), &c).await;
    let claimed = claim(&db, &o, "pk_claim_1", 1).await;
    assert_eq!(claimed.status, OrderStatus::Confirming);
    assert_eq!(claimed.payment_key, Some(key("pk_claim_1")));
    assert_eq!(claimed.updated_at, t(1));
    assert_eq!(claimed.created_at, o.created_at);
    assert_eq!(
        db.store.get_order(&o.order_id).await.unwrap(),
        Some(claimed.clone())
    );

    let again = db
        .store
        .claim_order(claim_req(&o, "pk_claim_1", 2))
        .await
        .unwrap();
    assert_eq!(
        again,
        ClaimOutcome::NotClaimed {
            order: claimed,
            enrolled_elsewhere: false
        }
    );

    let mut missing = claim_req(&o, "pk_claim_1", 2);
    missing.order_id = OrderId::generate();
    assert_eq!(
        db.store.claim_order(missing).await.unwrap(),
        ClaimOutcome::NotFound
    );
}

async fn claim_refusals_leave_order_unchanged(db: Db) {
    let c = course(&db, 10_000).await;
    let o = order(&db, UserId::new(), &c).await;

    let mut wrong_amount = claim_req(&o, "pk_refuse_1", 1);
    wrong_amount.amount = won(9_999);
    let mut wrong_user = claim_req(&o, "pk_refuse_1", 1);
    wrong_user.user_id = UserId::new();
    let expired = claim_req(&o, "pk_refuse_1", 30); // expires_at is t(30): not after it
    for req in [wrong_amount, wrong_user, expired] {
        let outcome = db.store.claim_order(req).await.unwrap();
        assert_eq!(
            outcome,
            ClaimOutcome::NotClaimed {
                order: o.clone(),
                enrolled_elsewhere: false
            }
        );
        assert_eq!(
            db.store.get_order(&o.order_id).await.unwrap(),
            Some(o.clone())
        );
    }
    let events = db.store.order_events(&o.order_id).await.unwrap();
    assert_eq!(kinds(&events), ["order.created"]);

    // Still claimable just before expiry.
    claim(&db, &o, "pk_refuse_1", 29).await;
}

async fn settle_records_payment_and_enrollment(db: Db) {
    let c = course(&db, 25_000).await;
    let user = UserId::new();
    let o = order(&db, user, &c).await;
    claim(&db, &o, "pk_settle_1", 1).await;
    let s = db
        .store
        .settle(settlement(&o, "pk_settle_1", "confirm", 2))
        .await
        .unwrap();
    assert!(s.newly_settled);
    assert_eq!(s.approved_at, t(2));
    assert_eq!(s.order.status, OrderStatus::Paid);
    assert_eq!(s.order.payment_id, Some(s.payment_id));
    assert_eq!(s.order.enrollment_id, Some(s.enrollment_id));
    assert_eq!(s.order.approved_at, Some(t(2)));
    assert_eq!(s.order.payment_key, Some(key("pk_settle_1")));
    assert_eq!(s.order.failure_code, None);
    assert_eq!(
        db.store.get_order(&o.order_id).await.unwrap(),
        Some(s.order.clone())
    );

    let p = db.store.get_payment(s.payment_id).await.unwrap().unwrap();
    assert_eq!(p.provider, domain::PROVIDER_TOSS);
    assert_eq!(p.provider_tx_id, "pk_settle_1");
    assert_eq!(p.order_id, o.order_id);
    assert_eq!((p.user_id, p.course_id), (user, c.id));
    assert_eq!(p.enrollment_id, Some(s.enrollment_id));
    assert_eq!((p.amount, p.balance), (won(25_000), won(25_000)));
    assert_eq!(p.status, PaymentStatus::Done);
    assert_eq!(p.method.as_deref(), Some("카드"));
    assert_eq!(p.approved_at, t(2));
    assert_eq!(
        db.store.payment_for_order(&o.order_id).await.unwrap(),
        Some(p)
    );

    let e = db
        .store
        .get_enrollment(s.enrollment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.user_id, e.course_id), (user, c.id));
    assert_eq!(e.status, EnrollmentStatus::Enrolled);
    assert_eq!(db.store.list_enrollments(user).await.unwrap(), vec![e]);

    // A second settle of the same payment (another path reporting it) changes nothing.
    let again = db
        .store
        .settle(settlement(&o, "pk_settle_1", "webhook", 5))
        .await
        .unwrap();
    assert!(!again.newly_settled);
    assert_eq!(again.payment_id, s.payment_id);
    assert_eq!(again.enrollment_id, s.enrollment_id);
    assert_eq!(again.approved_at, s.approved_at);
    assert_eq!(again.order, s.order);
    assert_eq!(db.raw.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(db.raw.count("SELECT count(*) FROM enrollments").await, 1);

    // Unknown order: loud.
    let mut unknown = settlement(&o, "pk_settle_2", "webhook", 5);
    unknown.order_id = OrderId::generate();
    assert!(matches!(
        db.store.settle(unknown).await,
        Err(StoreError::NotFound)
    ));

    // Uncaptured money is never settled.
    let mut ready = settlement(&o, "pk_settle_3", "webhook", 5);
    ready.status = PaymentStatus::WaitingForDeposit;
    assert!(matches!(
        db.store.settle(ready).await,
        Err(StoreError::Other(_))
    ));
}

async fn settle_conflicting_keys_are_refused(db: Db) {
    let c = course(&db, 10_000).await;
    let a = order(&db, UserId::new(), &c).await;
    let b = order(&db, UserId::new(), &c).await;
    buy(&db, &a, "pk_conflict_a").await;

    // Another payment key for an order that already has its payment.
    let err = db
        .store
        .settle(settlement(&a, "pk_conflict_other", "webhook", 3))
        .await
        .unwrap_err();
    assert_eq!(constraint(err), "payments_order_id_key");

    // A's payment key reported for order B.
    let err = db
        .store
        .settle(settlement(&b, "pk_conflict_a", "webhook", 3))
        .await
        .unwrap_err();
    assert_eq!(constraint(err), "payments_provider_tx_key");
    assert_eq!(db.raw.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(
        db.store
            .get_order(&b.order_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Pending
    );
}

async fn concurrent_settles_make_one_payment(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();
    let o = order(&db, user, &c).await;
    claim(&db, &o, "pk_race_1", 1).await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = db.store.clone();
        let s = settlement(
            &o,
            "pk_race_1",
            if i % 2 == 0 { "confirm" } else { "webhook" },
            2,
        );
        tasks.spawn(async move { store.settle(s).await });
    }
    let results: Vec<Settled> = tasks
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results.iter().filter(|s| s.newly_settled).count(), 1);
    let ids: HashSet<_> = results
        .iter()
        .map(|s| (s.payment_id, s.enrollment_id))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(results.iter().all(|s| s.order.status == OrderStatus::Paid));

    assert_eq!(db.raw.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(db.raw.count("SELECT count(*) FROM enrollments").await, 1);
    assert_eq!(db.store.list_enrollments(user).await.unwrap().len(), 1);
    let events = db.store.order_events(&o.order_id).await.unwrap();
    assert_eq!(
        kinds(&events),
        ["order.created", "order.claimed", "payment.settled"]
    );
}

async fn concurrent_claims_one_winner(db: Db) {
    let c = course(&db, 10_000).await;
    let o = order(&db, UserId::new(), &c).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = db.store.clone();
        let req = claim_req(&o, &format!("pk_claims_{i}"), 1);
        tasks.spawn(async move { store.claim_order(req).await });
    }
    let outcomes: Vec<ClaimOutcome> = tasks
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<&Order> = outcomes
        .iter()
        .filter_map(|o| match o {
            ClaimOutcome::Claimed(order) => Some(order),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let stored = db.store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(&stored, winners[0]);
    let events = db.store.order_events(&o.order_id).await.unwrap();
    assert_eq!(kinds(&events), ["order.created", "order.claimed"]);
}

/// Ten orders of one user for one course, claimed at once: the partial unique index (or the
/// claim's own check) lets exactly one through.
async fn concurrent_claims_of_sibling_orders_one_winner(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();
    let mut orders = Vec::new();
    for _ in 0..10 {
        orders.push(order(&db, user, &c).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, o) in orders.iter().enumerate() {
        let store = db.store.clone();
        let req = claim_req(o, &format!("pk_sibling_{i}"), 1);
        tasks.spawn(async move { store.claim_order(req).await });
    }
    let outcomes: Vec<ClaimOutcome> = tasks
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let claimed = outcomes
        .iter()
        .filter(|o| matches!(o, ClaimOutcome::Claimed(_)))
        .count();
    assert_eq!(claimed, 1, "{outcomes:?}");
    for outcome in &outcomes {
        if let ClaimOutcome::NotClaimed {
            order,
            enrolled_elsewhere,
        } = outcome
        {
            assert!(enrolled_elsewhere);
            assert_eq!(order.status, OrderStatus::Pending);
        }
    }
}

async fn second_order_sees_enrolled_elsewhere(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();
    let a = order(&db, user, &c).await;
    let b = order(&db, user, &c).await;
    claim(&db, &a, "pk_else_a", 1).await;

    // A is being charged: B may not be.
    match db
        .store
        .claim_order(claim_req(&b, "pk_else_b", 2))
        .await
        .unwrap()
    {
        ClaimOutcome::NotClaimed {
            order,
            enrolled_elsewhere,
        } => {
            assert!(enrolled_elsewhere);
            assert_eq!(order, b);
        }
        other => panic!("{other:?}"),
    }

    db.store
        .settle(settlement(&a, "pk_else_a", "confirm", 2))
        .await
        .unwrap();
    match db
        .store
        .claim_order(claim_req(&b, "pk_else_b", 3))
        .await
        .unwrap()
    {
        ClaimOutcome::NotClaimed {
            enrolled_elsewhere, ..
        } => assert!(enrolled_elsewhere),
        other => panic!("{other:?}"),
    }

    // A replayed claim of the PAID order itself: not claimed, and the user is enrolled.
    match db
        .store
        .claim_order(claim_req(&a, "pk_else_a", 4))
        .await
        .unwrap()
    {
        ClaimOutcome::NotClaimed {
            order,
            enrolled_elsewhere,
        } => {
            assert!(enrolled_elsewhere);
            assert_eq!(order.status, OrderStatus::Paid);
            assert!(order.enrollment_id.is_some());
        }
        other => panic!("{other:?}"),
    }
}

async fn settle_of_failed_or_expired_order_records_payment(db: Db) {
    let c = course(&db, 10_000).await;
    for (to, code) in [
        (OrderStatus::Failed, Some("REJECT_CARD_PAYMENT")),
        (OrderStatus::Expired, None),
    ] {
        let o = order(&db, UserId::new(), &c).await;
        claim(&db, &o, &format!("pk_late_{}", to.as_str()), 1).await;
        assert!(
            db.store
                .fail_order(&o.order_id, to, code, &ctx("reconciler", 2))
                .await
                .unwrap()
        );
        let failed = db.store.get_order(&o.order_id).await.unwrap().unwrap();
        assert_eq!(failed.status, to);
        assert_eq!(failed.failure_code.as_deref(), code);

        // Toss later says the money moved after all: it is recorded and the order is PAID.
        let s = db
            .store
            .settle(settlement(
                &o,
                &format!("pk_late_{}", to.as_str()),
                "reconciler",
                5,
            ))
            .await
            .unwrap();
        assert!(s.newly_settled);
        assert_eq!(s.order.status, OrderStatus::Paid);
        assert_eq!(s.order.failure_code, None);
        assert!(
            db.store
                .payment_for_order(&o.order_id)
                .await
                .unwrap()
                .is_some()
        );
        let events = db.store.order_events(&o.order_id).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!(last.kind, "payment.settled");
        assert_eq!(last.from_status.as_deref(), Some(to.as_str()));
        assert_eq!(last.to_status.as_deref(), Some("PAID"));
    }
}

async fn duplicate_payment_is_kept_and_flagged(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();
    let a = order(&db, user, &c).await;
    let b = order(&db, user, &c).await;
    let first = buy(&db, &a, "pk_dup_a").await;

    // B was paid too (e.g. a virtual-account deposit reported by webhook).
    let dup = db
        .store
        .settle(settlement(&b, "pk_dup_b", "webhook", 6))
        .await
        .unwrap();
    assert!(dup.newly_settled);
    assert_eq!(dup.order.status, OrderStatus::Failed);
    assert_eq!(dup.order.failure_code.as_deref(), Some("DUPLICATE_PAYMENT"));
    assert_eq!(dup.order.payment_id, Some(dup.payment_id));
    assert_ne!(dup.payment_id, first.payment_id);
    assert_eq!(dup.enrollment_id, first.enrollment_id);

    let p = db
        .store
        .payment_for_order(&b.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.id, dup.payment_id);
    assert_eq!(p.provider_tx_id, "pk_dup_b");
    assert_eq!(db.raw.count("SELECT count(*) FROM payments").await, 2);
    assert_eq!(db.raw.count("SELECT count(*) FROM enrollments").await, 1);

    let events = db.store.order_events(&b.order_id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, "payment.duplicate");
    assert_eq!(last.to_status.as_deref(), Some("FAILED"));
    assert_eq!(last.payment_id, Some(dup.payment_id));

    // Reported again: same answer, nothing new.
    let again = db
        .store
        .settle(settlement(&b, "pk_dup_b", "reconciler", 9))
        .await
        .unwrap();
    assert!(!again.newly_settled);
    assert_eq!(again.payment_id, dup.payment_id);
    assert_eq!(again.order.status, OrderStatus::Failed);
    assert_eq!(
        db.store.order_events(&b.order_id).await.unwrap().len(),
        events.len()
    );

    // A is untouched.
    assert_eq!(
        db.store.get_order(&a.order_id).await.unwrap().unwrap(),
        first.order
    );
}

async fn release_and_fail_only_from_open_states(db: Db) {
    let c = course(&db, 10_000).await;
    let o = order(&db, UserId::new(), &c).await;
    let sys = ctx("system", 2);

    assert!(
        !db.store.release_order(&o.order_id, &sys).await.unwrap(),
        "PENDING"
    );
    claim(&db, &o, "pk_release_1", 1).await;
    assert!(db.store.release_order(&o.order_id, &sys).await.unwrap());
    let released = db.store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(released.status, OrderStatus::Pending);
    assert_eq!(released.updated_at, t(2));
    assert!(!db.store.release_order(&o.order_id, &sys).await.unwrap());

    // Released orders can be claimed again.
    claim(&db, &o, "pk_release_2", 3).await;
    assert!(
        db.store
            .fail_order(
                &o.order_id,
                OrderStatus::Failed,
                Some("REJECT_CARD_PAYMENT"),
                &sys
            )
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .fail_order(&o.order_id, OrderStatus::Expired, None, &sys)
            .await
            .unwrap(),
        "FAILED is not open"
    );
    assert!(!db.store.release_order(&o.order_id, &sys).await.unwrap());

    // fail_order from PENDING works; PAID orders are never failed or released.
    let p = order(&db, UserId::new(), &c).await;
    assert!(
        db.store
            .fail_order(&p.order_id, OrderStatus::Expired, None, &sys)
            .await
            .unwrap()
    );
    let paid = order(&db, UserId::new(), &c).await;
    buy(&db, &paid, "pk_release_paid").await;
    assert!(
        !db.store
            .fail_order(&paid.order_id, OrderStatus::Failed, None, &sys)
            .await
            .unwrap()
    );
    assert!(!db.store.release_order(&paid.order_id, &sys).await.unwrap());
    assert_eq!(
        db.store
            .get_order(&paid.order_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Paid
    );

    // Only FAILED/EXPIRED are failure targets.
    assert!(matches!(
        db.store
            .fail_order(&p.order_id, OrderStatus::Paid, None, &sys)
            .await,
        Err(StoreError::Other(_))
    ));
    assert!(
        !db.store
            .fail_order(&OrderId::generate(), OrderStatus::Failed, None, &sys)
            .await
            .unwrap()
    );

    let events = db.store.order_events(&o.order_id).await.unwrap();
    assert_eq!(
        kinds(&events),
        [
            "order.created",
            "order.claimed",
            "order.released",
            "order.claimed",
            "order.failed"
        ]
    );
    let failed = events.last().unwrap();
    assert_eq!(failed.from_status.as_deref(), Some("CONFIRMING"));
    assert_eq!(failed.to_status.as_deref(), Some("FAILED"));
    assert_eq!(failed.detail["code"], "REJECT_CARD_PAYMENT");
    let expired = db.store.order_events(&p.order_id).await.unwrap();
    assert_eq!(kinds(&expired), ["order.created", "order.expired"]);
    assert_eq!(expired[1].from_status.as_deref(), Some("PENDING"));
}

async fn open_orders_oldest_first(db: Db) {
    let c = course(&db, 10_000).await;
    let o3 = order_at(&db, UserId::new(), &c, 3).await;
    let o1 = order_at(&db, UserId::new(), &c, 1).await;
    let o2 = order_at(&db, UserId::new(), &c, 2).await;
    let paid = order_at(&db, UserId::new(), &c, 0).await;
    let failed = order_at(&db, UserId::new(), &c, 0).await;
    let late = order_at(&db, UserId::new(), &c, 20).await;
    buy(&db, &paid, "pk_open_paid").await;
    db.store
        .fail_order(
            &failed.order_id,
            OrderStatus::Failed,
            None,
            &ctx("system", 0),
        )
        .await
        .unwrap();
    // Claiming o1 at minute 4 touches it: it moves behind o3.
    claim(&db, &o1, "pk_open_1", 4).await;

    let open = db.store.open_orders(t(10), 100).await.unwrap();
    let ids: Vec<&OrderId> = open.iter().map(|o| &o.order_id).collect();
    assert_eq!(ids, [&o2.order_id, &o3.order_id, &o1.order_id]);
    assert_eq!(open[2].status, OrderStatus::Confirming);

    let limited = db.store.open_orders(t(10), 2).await.unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].order_id, o2.order_id);
    // The cut-off is strict: updated_at < older_than.
    let early = db.store.open_orders(t(2), 100).await.unwrap();
    assert!(early.is_empty(), "{early:?}");
    let all = db.store.open_orders(t(60), 100).await.unwrap();
    assert_eq!(all.last().unwrap().order_id, late.order_id);
}

async fn idempotency_keys(db: Db) {
    let s = db.store.as_ref();
    let scope = "confirm:user-1";
    assert_eq!(
        s.remember_idempotency_key(scope, "k1", "fp-a", t(0), t(10))
            .await
            .unwrap(),
        KeyUse::Fresh
    );
    assert_eq!(
        s.remember_idempotency_key(scope, "k1", "fp-a", t(1), t(11))
            .await
            .unwrap(),
        KeyUse::SameRequest
    );
    assert_eq!(
        s.remember_idempotency_key(scope, "k1", "fp-b", t(2), t(12))
            .await
            .unwrap(),
        KeyUse::DifferentRequest
    );
    // Other scope, other key: independent.
    assert_eq!(
        s.remember_idempotency_key("confirm:user-2", "k1", "fp-b", t(2), t(12))
            .await
            .unwrap(),
        KeyUse::Fresh
    );
    assert_eq!(
        s.remember_idempotency_key(scope, "k2", "fp-b", t(2), t(12))
            .await
            .unwrap(),
        KeyUse::Fresh
    );
    // Just before expiry it is still remembered (the first use's expiry, not a later one's).
    assert_eq!(
        s.remember_idempotency_key(scope, "k1", "fp-b", t(9), t(19))
            .await
            .unwrap(),
        KeyUse::DifferentRequest
    );
    // Expired: fresh again, now with the new fingerprint.
    assert_eq!(
        s.remember_idempotency_key(scope, "k1", "fp-b", t(10), t(20))
            .await
            .unwrap(),
        KeyUse::Fresh
    );
    assert_eq!(
        s.remember_idempotency_key(scope, "k1", "fp-b", t(11), t(21))
            .await
            .unwrap(),
        KeyUse::SameRequest
    );
    assert_eq!(
        s.remember_idempotency_key(scope, "k1", "fp-a", t(11), t(21))
            .await
            .unwrap(),
        KeyUse::DifferentRequest
    );
}

async fn remember_once(db: Db) {
    let s = db.store.as_ref();
    assert!(
        s.remember_once("webhook-sig", "abc", t(0), t(10))
            .await
            .unwrap()
    );
    assert!(
        !s.remember_once("webhook-sig", "abc", t(1), t(11))
            .await
            .unwrap()
    );
    assert!(
        !s.remember_once("webhook-sig", "abc", t(9), t(19))
            .await
            .unwrap()
    );
    assert!(
        s.remember_once("transmission", "abc", t(1), t(11))
            .await
            .unwrap()
    );
    // After expiry it is accepted again, and remembered again.
    assert!(
        s.remember_once("webhook-sig", "abc", t(10), t(20))
            .await
            .unwrap()
    );
    assert!(
        !s.remember_once("webhook-sig", "abc", t(15), t(25))
            .await
            .unwrap()
    );

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let store = db.store.clone();
        tasks.spawn(async move { store.remember_once("race", "tok", t(0), t(10)).await });
    }
    let firsts = tasks
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .filter(|first| *first)
        .count();
    assert_eq!(firsts, 1);
}

async fn forget_once_and_deposit_secret(db: Db) {
    let s = db.store.as_ref();
    assert!(
        s.remember_once("transmission", "tx-1", t(0), t(100))
            .await
            .unwrap()
    );
    assert!(
        !s.remember_once("transmission", "tx-1", t(1), t(100))
            .await
            .unwrap()
    );
    s.forget_once("transmission", "tx-1").await.unwrap();
    // Forgotten: accepted again, then remembered again. Other kinds are untouched.
    assert!(
        s.remember_once("transmission", "tx-1", t(2), t(100))
            .await
            .unwrap()
    );
    assert!(
        !s.remember_once("transmission", "tx-1", t(3), t(100))
            .await
            .unwrap()
    );
    s.forget_once("transmission", "never-seen").await.unwrap();

    let c = course(&db, 10_000).await;
    let o = order(&db, UserId::new(), &c).await;
    assert_eq!(s.deposit_secret(&o.order_id).await.unwrap(), None);
    assert!(
        s.record_deposit_secret(&o.order_id, "va-secret-1")
            .await
            .unwrap()
    );
    assert_eq!(
        s.deposit_secret(&o.order_id).await.unwrap().as_deref(),
        Some("va-secret-1")
    );
    let missing = domain::OrderId::parse("no-such-order-1").unwrap();
    assert!(!s.record_deposit_secret(&missing, "x").await.unwrap());
    assert_eq!(s.deposit_secret(&missing).await.unwrap(), None);
}

async fn events_are_appended_in_order_and_immutable(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();
    let o = order(&db, user, &c).await;
    let s = buy(&db, &o, "pk_events_1").await;

    let events = db.store.order_events(&o.order_id).await.unwrap();
    assert_eq!(
        kinds(&events),
        ["order.created", "order.claimed", "payment.settled"]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    let actor = format!("user:{}", user.0);
    assert_eq!(events[0].actor, actor);
    assert_eq!(events[0].request_id.as_deref(), Some("req-0"));
    assert_eq!(events[0].to_status.as_deref(), Some("PENDING"));
    assert_eq!(events[0].at, t(0));
    assert_eq!(
        events[0].detail,
        serde_json::json!({ "amount": 10_000, "course_id": c.id })
    );
    assert_eq!(events[1].from_status.as_deref(), Some("PENDING"));
    assert_eq!(events[1].to_status.as_deref(), Some("CONFIRMING"));
    assert_eq!(events[1].detail["payment_key"], "pk_events_1");
    assert_eq!(events[1].at, t(1));
    let settled = &events[2];
    assert_eq!(settled.actor, "confirm");
    assert_eq!(settled.payment_id, Some(s.payment_id));
    assert_eq!(settled.from_status.as_deref(), Some("CONFIRMING"));
    assert_eq!(settled.to_status.as_deref(), Some("PAID"));
    assert_eq!(settled.detail["source"], "confirm");
    assert_eq!(settled.detail["amount"], 10_000);
    assert_eq!(settled.detail["method"], "카드");
    assert!(
        events
            .iter()
            .all(|e| e.order_id.as_ref() == Some(&o.order_id))
    );

    let update = db
        .raw
        .exec("UPDATE payment_events SET actor = 'forged'")
        .await;
    let delete = db.raw.exec("DELETE FROM payment_events").await;
    for result in [update, delete] {
        let err = result.expect_err("payment_events must be append-only");
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    if db.is_pg() {
        let truncate = db.raw.exec("TRUNCATE payment_events").await;
        assert!(truncate.is_err());
    }
    assert_eq!(db.store.order_events(&o.order_id).await.unwrap(), events);
}

async fn enrollment_foreign_keys(db: Db) {
    let c = course(&db, 10_000).await;
    let o = order(&db, UserId::new(), &c).await;
    let s = buy(&db, &o, "pk_fk_1").await;
    let enrollment = s.enrollment_id.0;

    db.raw.insert_exam_attempt(enrollment).await.unwrap();
    let delete = db
        .raw
        .exec_uuid("DELETE FROM enrollments WHERE id = $1", enrollment)
        .await;
    let err = delete.expect_err("an enrollment with exam attempts must not be deletable");
    let kind = err.as_database_error().map(|d| d.kind());
    assert_eq!(
        kind,
        Some(sqlx::error::ErrorKind::ForeignKeyViolation),
        "{err}"
    );
    // An attempt for an enrollment that does not exist is refused too.
    assert!(db.raw.insert_exam_attempt(Uuid::now_v7()).await.is_err());

    // payments.enrollment_id follows an enrollment id change (ON UPDATE CASCADE).
    let new_id = Uuid::now_v7();
    db.raw
        .exec_uuids(
            "UPDATE enrollments SET id = $1 WHERE id = $2",
            new_id,
            enrollment,
        )
        .await
        .unwrap();
    let p = db.store.get_payment(s.payment_id).await.unwrap().unwrap();
    assert_eq!(p.enrollment_id.map(|e| e.0), Some(new_id));
    let order = db.store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(order.enrollment_id.map(|e| e.0), Some(new_id));
}

/// The seed's budget is ≤ 3 round trips per confirm. PostgreSQL: claim 1 + settle 1. SQLite
/// pays for its transactions (BEGIN and COMMIT count); its figures are pinned here so a change
/// is noticed, and printed (`--nocapture`) for the report.
async fn round_trips(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();

    async fn count<F: std::future::Future>(f: F) -> (u32, F::Output) {
        let counter = Counter::new();
        let out = counter.scope(f).await;
        (counter.get(), out)
    }

    let (create, o) = count(order(&db, user, &c)).await;
    let (claim_fresh, claimed) = count(db.store.claim_order(claim_req(&o, "pk_rt_1", 1))).await;
    assert!(matches!(claimed.unwrap(), ClaimOutcome::Claimed(_)));
    let (settle_fresh, s) = count(db.store.settle(settlement(&o, "pk_rt_1", "confirm", 2))).await;
    assert!(s.unwrap().newly_settled);
    let (claim_replay, replay) = count(db.store.claim_order(claim_req(&o, "pk_rt_1", 3))).await;
    assert!(matches!(replay.unwrap(), ClaimOutcome::NotClaimed { .. }));
    let (settle_replay, s) = count(db.store.settle(settlement(&o, "pk_rt_1", "webhook", 3))).await;
    assert!(!s.unwrap().newly_settled);

    let o2 = order(&db, UserId::new(), &c).await;
    claim(&db, &o2, "pk_rt_2", 1).await;
    let (release, moved) = count(db.store.release_order(&o2.order_id, &ctx("system", 2))).await;
    assert!(moved.unwrap());
    let (fail, moved) = count(db.store.fail_order(
        &o2.order_id,
        OrderStatus::Failed,
        Some("X"),
        &ctx("system", 3),
    ))
    .await;
    assert!(moved.unwrap());
    let (get, _) = count(db.store.get_order(&o.order_id)).await;
    let (key_fresh, _) = count(
        db.store
            .remember_idempotency_key("s", "k", "f", t(0), t(10)),
    )
    .await;
    let (key_seen, _) = count(
        db.store
            .remember_idempotency_key("s", "k", "f", t(1), t(10)),
    )
    .await;
    let (once, _) = count(db.store.remember_once("k", "t", t(0), t(10))).await;

    let measured = [
        ("create_order", create),
        ("claim_order (fresh)", claim_fresh),
        ("settle (fresh)", settle_fresh),
        ("claim_order (replay)", claim_replay),
        ("settle (replay)", settle_replay),
        ("release_order", release),
        ("fail_order", fail),
        ("get_order", get),
        ("remember_idempotency_key (fresh)", key_fresh),
        ("remember_idempotency_key (seen)", key_seen),
        ("remember_once", once),
    ];
    let backend = if db.is_pg() { "postgres" } else { "sqlite" };
    for (method, n) in measured {
        println!("round trips [{backend}] {method}: {n}");
    }
    let expected: [u32; 11] = if db.is_pg() {
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    } else {
        [4, 4, 7, 4, 3, 4, 4, 1, 1, 2, 1]
    };
    let got: Vec<u32> = measured.iter().map(|(_, n)| *n).collect();
    assert_eq!(got, expected, "{measured:?}");
    if db.is_pg() {
        // The confirm flow: a fresh confirm is claim + settle, a replay is the claim alone.
        assert_eq!(claim_fresh + settle_fresh, 2);
        assert_eq!(claim_replay, 1);
    }
}

// --- refunds and exams ---------------------------------------------------------------------

fn new_refund(payment: domain::PaymentId, amount: Option<i64>, minutes: i64) -> NewRefund {
    let id = RefundId::new();
    NewRefund {
        id,
        payment_id: payment,
        amount: amount.map(won),
        reason: "customer asked".to_owned(),
        idempotency_key: IdempotencyKey::for_refund(&id.0),
        requested_by: "service_role".to_owned(),
        ctx: ctx("service_role", minutes),
    }
}

/// Toss's view after the bank took a virtual-account deposit back (WAITING_FOR_DEPOSIT again),
/// recorded as the server's reversal flow does: one cancel of `amount` under `tx`.
fn reversal(payment_key: &str, tx: &str, amount: i64, minutes: i64) -> Cancellation {
    let mut c = cancellation(payment_key, 0, &[(tx, amount)], minutes);
    c.status = PaymentStatus::WaitingForDeposit;
    c
}

fn cancellation(
    payment_key: &str,
    balance: i64,
    cancels: &[(&str, i64)],
    minutes: i64,
) -> Cancellation {
    Cancellation {
        payment_key: key(payment_key),
        status: if balance == 0 {
            PaymentStatus::Canceled
        } else {
            PaymentStatus::PartialCanceled
        },
        balance: won(balance),
        cancels: cancels
            .iter()
            .map(|(tx, amount)| ProviderCancel {
                transaction_key: (*tx).to_owned(),
                amount: won(*amount),
                reason: "customer asked".to_owned(),
            })
            .collect(),
        source: "webhook".to_owned(),
        ctx: ctx("webhook", minutes),
    }
}

async fn begun(db: &Db, new: NewRefund) -> Refund {
    match db.store.begin_refund(new).await.unwrap() {
        RefundBegin::Begun { refund, .. } => refund,
        other => panic!("expected Begun, got {other:?}"),
    }
}

async fn refunds_begin_record_and_fail(db: Db) {
    let c = course(&db, 10_000).await;
    let o = order(&db, UserId::new(), &c).await;
    let s = buy(&db, &o, "pk_refund_1").await;

    assert_eq!(
        db.store
            .begin_refund(new_refund(domain::PaymentId::new(), None, 3))
            .await
            .unwrap(),
        RefundBegin::PaymentNotFound
    );
    let missing = db
        .store
        .record_cancellation(cancellation("pk_unknown", 0, &[("tx_x", 1)], 3))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");

    // A full refund waits for Toss; meanwhile nothing else may start.
    let full = begun(&db, new_refund(s.payment_id, None, 3)).await;
    assert_eq!(full.amount, won(10_000));
    assert_eq!(full.status, RefundStatus::Requested);
    assert_eq!(full.transaction_key, None);
    assert_eq!(
        full.idempotency_key,
        IdempotencyKey::for_refund(&full.id.0).as_str()
    );
    assert_eq!(full.created_at, t(3));
    match db
        .store
        .begin_refund(new_refund(s.payment_id, Some(1), 4))
        .await
        .unwrap()
    {
        RefundBegin::NotAllowed {
            in_progress,
            available,
            ..
        } => {
            assert!(in_progress);
            assert_eq!(available, won(0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        db.store.get_refund(full.id).await.unwrap(),
        Some(full.clone())
    );
    // Toss refused it: FAILED, once.
    assert!(
        db.store
            .fail_refund(full.id, "REFUND_REJECTED", &ctx("service_role", 5))
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .fail_refund(full.id, "REFUND_REJECTED", &ctx("service_role", 5))
            .await
            .unwrap()
    );
    assert_eq!(
        db.store.get_refund(full.id).await.unwrap().unwrap().status,
        RefundStatus::Failed
    );

    // A partial refund, recorded from Toss's answer.
    let part = begun(&db, new_refund(s.payment_id, Some(3_000), 6)).await;
    assert_eq!(part.amount, won(3_000));
    let rec = db
        .store
        .record_cancellation(cancellation("pk_refund_1", 7_000, &[("tx_1", 3_000)], 7))
        .await
        .unwrap();
    assert_eq!(rec.refunds_recorded, 1);
    assert!(!rec.enrollment_revoked);
    assert_eq!(rec.enrollment_status, Some(EnrollmentStatus::Enrolled));
    assert_eq!(rec.payment.balance, won(7_000));
    assert_eq!(rec.payment.status, PaymentStatus::PartialCanceled);
    assert_eq!(rec.refunded_amount(), won(3_000));
    let part = db.store.get_refund(part.id).await.unwrap().unwrap();
    assert_eq!(part.status, RefundStatus::Done);
    assert_eq!(part.transaction_key.as_deref(), Some("tx_1"));

    // Over-refund refused with what is left.
    match db
        .store
        .begin_refund(new_refund(s.payment_id, Some(7_001), 8))
        .await
        .unwrap()
    {
        RefundBegin::NotAllowed {
            in_progress,
            available,
            payment,
        } => {
            assert!(!in_progress);
            assert_eq!(available, won(7_000));
            assert_eq!(payment.balance, won(7_000));
        }
        other => panic!("{other:?}"),
    }
    // The rest: the enrollment and the order are refunded.
    let rest = begun(&db, new_refund(s.payment_id, None, 9)).await;
    assert_eq!(rest.amount, won(7_000));
    let rec = db
        .store
        .record_cancellation(cancellation(
            "pk_refund_1",
            0,
            &[("tx_1", 3_000), ("tx_2", 7_000)],
            10,
        ))
        .await
        .unwrap();
    assert_eq!(rec.refunds_recorded, 1);
    assert!(rec.enrollment_revoked);
    assert_eq!(rec.enrollment_status, Some(EnrollmentStatus::Refunded));
    assert_eq!(rec.payment.status, PaymentStatus::Canceled);
    assert_eq!(rec.refunded_amount(), won(10_000));
    let enrollment = db
        .store
        .get_enrollment(s.enrollment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(enrollment.status, EnrollmentStatus::Refunded);
    assert_eq!(
        db.store
            .get_order(&o.order_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Refunded
    );
    let events = db.store.order_events(&o.order_id).await.unwrap();

    // The same view again (a webhook retry), and an older one: nothing changes.
    for c in [
        cancellation("pk_refund_1", 0, &[("tx_1", 3_000), ("tx_2", 7_000)], 11),
        cancellation("pk_refund_1", 7_000, &[("tx_1", 3_000)], 12),
    ] {
        let again = db.store.record_cancellation(c).await.unwrap();
        assert_eq!(again.refunds_recorded, 0);
        assert!(!again.enrollment_revoked);
        assert_eq!(again.payment.balance, won(0));
        assert_eq!(again.payment.status, PaymentStatus::Canceled);
    }
    assert_eq!(db.store.order_events(&o.order_id).await.unwrap(), events);
    let refunds = db.store.payment_refunds(s.payment_id).await.unwrap();
    let summary: Vec<(i64, RefundStatus)> =
        refunds.iter().map(|r| (r.amount.won(), r.status)).collect();
    assert_eq!(
        summary,
        [
            (10_000, RefundStatus::Failed),
            (3_000, RefundStatus::Done),
            (7_000, RefundStatus::Done)
        ]
    );
    assert_eq!(
        kinds(&events),
        [
            "order.created",
            "order.claimed",
            "payment.settled",
            "refund.requested",
            "refund.failed",
            "refund.requested",
            "payment.partially_canceled",
            "refund.requested",
            "payment.canceled",
            "enrollment.refunded",
            "order.refunded",
        ]
    );
    // Nothing left to refund.
    assert!(matches!(
        db.store
            .begin_refund(new_refund(s.payment_id, None, 13))
            .await
            .unwrap(),
        RefundBegin::NotAllowed {
            in_progress: false,
            ..
        }
    ));
}

async fn concurrent_refund_requests_one_passes(db: Db) {
    let c = course(&db, 10_000).await;
    let s = buy(&db, &order(&db, UserId::new(), &c).await, "pk_refund_race").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = db.store.clone();
        let amount = if i % 2 == 0 { None } else { Some(6_000) };
        let new = new_refund(s.payment_id, amount, 3);
        tasks.spawn(async move { store.begin_refund(new).await.unwrap() });
    }
    let results = tasks.join_all().await;
    let passed = results
        .iter()
        .filter(|r| matches!(r, RefundBegin::Begun { .. }))
        .count();
    assert_eq!(passed, 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(
        r,
        RefundBegin::Begun { .. }
            | RefundBegin::NotAllowed {
                in_progress: true,
                ..
            }
    )));
    assert_eq!(
        db.store.payment_refunds(s.payment_id).await.unwrap().len(),
        1
    );
}

async fn concurrent_recordings_make_one_refund_row(db: Db) {
    let c = course(&db, 10_000).await;
    let o = order(&db, UserId::new(), &c).await;
    let s = buy(&db, &o, "pk_record_race").await;
    let requested = begun(&db, new_refund(s.payment_id, None, 3)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let store = db.store.clone();
        let c = cancellation("pk_record_race", 0, &[("tx_race", 10_000)], 4 + i);
        tasks.spawn(async move { store.record_cancellation(c).await.unwrap() });
    }
    let results = tasks.join_all().await;
    assert_eq!(results.iter().map(|r| r.refunds_recorded).sum::<u32>(), 1);
    assert_eq!(results.iter().filter(|r| r.enrollment_revoked).count(), 1);
    let refunds = db.store.payment_refunds(s.payment_id).await.unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].id, requested.id);
    assert_eq!(refunds[0].status, RefundStatus::Done);
    let events = db.store.order_events(&o.order_id).await.unwrap();
    assert_eq!(
        kinds(&events)
            .iter()
            .filter(|k| **k == "payment.canceled")
            .count(),
        1
    );
    assert_eq!(
        kinds(&events)
            .iter()
            .filter(|k| **k == "enrollment.refunded")
            .count(),
        1
    );
}

async fn duplicate_payment_refund_keeps_the_enrollment(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();
    let a = order(&db, user, &c).await;
    let b = order(&db, user, &c).await;
    let first = buy(&db, &a, "pk_dup_refund_a").await;
    let dup = db
        .store
        .settle(settlement(&b, "pk_dup_refund_b", "webhook", 6))
        .await
        .unwrap();
    assert_eq!(dup.order.failure_code.as_deref(), Some("DUPLICATE_PAYMENT"));

    // The duplicate is refunded in full: the buyer keeps the course bought by order A.
    let rec = db
        .store
        .record_cancellation(cancellation(
            "pk_dup_refund_b",
            0,
            &[("tx_dup_b", 10_000)],
            7,
        ))
        .await
        .unwrap();
    assert!(!rec.enrollment_revoked);
    assert_eq!(rec.enrollment_status, Some(EnrollmentStatus::Enrolled));
    assert_eq!(rec.payment.status, PaymentStatus::Canceled);
    assert_eq!(
        db.store
            .get_enrollment(first.enrollment_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        EnrollmentStatus::Enrolled
    );
    assert_eq!(
        db.store
            .get_order(&b.order_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Refunded
    );
    assert_eq!(
        db.store
            .get_order(&a.order_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Paid
    );

    // Refunding A itself revokes it.
    let rec = db
        .store
        .record_cancellation(cancellation(
            "pk_dup_refund_a",
            0,
            &[("tx_dup_a", 10_000)],
            8,
        ))
        .await
        .unwrap();
    assert!(rec.enrollment_revoked);
    assert_eq!(
        db.store
            .get_enrollment(first.enrollment_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        EnrollmentStatus::Refunded
    );
}

async fn stuck_refunds_oldest_first(db: Db) {
    let c = course(&db, 10_000).await;
    let s1 = buy(&db, &order(&db, UserId::new(), &c).await, "pk_stuck_1").await;
    let s2 = buy(&db, &order(&db, UserId::new(), &c).await, "pk_stuck_2").await;
    let s3 = buy(&db, &order(&db, UserId::new(), &c).await, "pk_stuck_3").await;
    let old = begun(&db, new_refund(s1.payment_id, None, 3)).await;
    let fresh = begun(&db, new_refund(s2.payment_id, Some(1_000), 30)).await;
    let failed = begun(&db, new_refund(s3.payment_id, None, 2)).await;
    db.store
        .fail_refund(failed.id, "X", &ctx("service_role", 4))
        .await
        .unwrap();
    let stuck = db.store.stuck_refunds(t(20), 10).await.unwrap();
    assert_eq!(stuck, vec![old.clone()]);
    let stuck = db.store.stuck_refunds(t(40), 10).await.unwrap();
    assert_eq!(
        stuck.iter().map(|r| r.id).collect::<Vec<_>>(),
        [old.id, fresh.id]
    );
    assert_eq!(db.store.stuck_refunds(t(40), 1).await.unwrap().len(), 1);
}

async fn exam_attempts_gated_limited_and_submitted_once(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();
    let o = order(&db, user, &c).await;
    let s = buy(&db, &o, "pk_exam_1").await;
    assert_eq!(
        db.store
            .start_attempt(EnrollmentId::new(), AttemptId::new(), 3, t(3))
            .await
            .unwrap(),
        AttemptStart::EnrollmentNotFound
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        match db
            .store
            .start_attempt(s.enrollment_id, AttemptId::new(), 3, t(3 + i))
            .await
            .unwrap()
        {
            AttemptStart::Started(a) => {
                assert_eq!(a.enrollment_id, s.enrollment_id);
                assert_eq!(a.user_id, user);
                assert_eq!(a.started_at, t(3 + i));
                assert_eq!(a.score, None);
                assert_eq!(db.store.get_attempt(a.id).await.unwrap(), Some(a.clone()));
                ids.push(a.id);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        db.store
            .start_attempt(s.enrollment_id, AttemptId::new(), 3, t(9))
            .await
            .unwrap(),
        AttemptStart::LimitReached { used: 3 }
    );
    // A higher limit (configuration change) allows one more.
    assert!(matches!(
        db.store
            .start_attempt(s.enrollment_id, AttemptId::new(), 4, t(9))
            .await
            .unwrap(),
        AttemptStart::Started(_)
    ));

    match db.store.submit_attempt(ids[0], 87, t(10)).await.unwrap() {
        AttemptSubmit::Submitted(a) => {
            assert_eq!(a.score, Some(87));
            assert_eq!(a.submitted_at, Some(t(10)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        db.store.submit_attempt(ids[0], 10, t(11)).await.unwrap(),
        AttemptSubmit::AlreadySubmitted
    );
    assert_eq!(
        db.store.get_attempt(ids[0]).await.unwrap().unwrap().score,
        Some(87)
    );
    assert_eq!(
        db.store
            .submit_attempt(AttemptId::new(), 10, t(11))
            .await
            .unwrap(),
        AttemptSubmit::NotFound
    );
    assert_eq!(db.store.get_attempt(AttemptId::new()).await.unwrap(), None);

    // A refund revokes the enrollment: no new attempts.
    db.store
        .record_cancellation(cancellation("pk_exam_1", 0, &[("tx_exam", 10_000)], 12))
        .await
        .unwrap();
    assert_eq!(
        db.store
            .start_attempt(s.enrollment_id, AttemptId::new(), 10, t(13))
            .await
            .unwrap(),
        AttemptStart::NotEnrolled
    );
}

async fn concurrent_attempt_starts_respect_the_limit(db: Db) {
    let c = course(&db, 10_000).await;
    let s = buy(&db, &order(&db, UserId::new(), &c).await, "pk_exam_race").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = db.store.clone();
        let enrollment = s.enrollment_id;
        tasks.spawn(async move {
            store
                .start_attempt(enrollment, AttemptId::new(), 3, t(5))
                .await
                .unwrap()
        });
    }
    let results = tasks.join_all().await;
    let started = results
        .iter()
        .filter(|r| matches!(r, AttemptStart::Started(_)))
        .count();
    assert_eq!(started, 3, "{results:?}");
    assert!(results.iter().all(|r| matches!(
        r,
        AttemptStart::Started(_) | AttemptStart::LimitReached { used: 3 }
    )));
    assert_eq!(db.raw.count("SELECT count(*) FROM exam_attempts").await, 3);
}

async fn concurrent_submits_one_wins(db: Db) {
    let c = course(&db, 10_000).await;
    let s = buy(&db, &order(&db, UserId::new(), &c).await, "pk_submit_race").await;
    let AttemptStart::Started(a) = db
        .store
        .start_attempt(s.enrollment_id, AttemptId::new(), 3, t(3))
        .await
        .unwrap()
    else {
        panic!("attempt not started")
    };
    let mut tasks = tokio::task::JoinSet::new();
    for score in 0..10 {
        let store = db.store.clone();
        tasks.spawn(async move { store.submit_attempt(a.id, score, t(4)).await.unwrap() });
    }
    let results = tasks.join_all().await;
    let winners: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            AttemptSubmit::Submitted(a) => Some(a.score),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(
        db.store.get_attempt(a.id).await.unwrap().unwrap().score,
        winners[0]
    );
}

async fn enrollment_with_started_attempts_cannot_be_deleted(db: Db) {
    let c = course(&db, 10_000).await;
    let s = buy(&db, &order(&db, UserId::new(), &c).await, "pk_exam_fk").await;
    assert!(matches!(
        db.store
            .start_attempt(s.enrollment_id, AttemptId::new(), 3, t(3))
            .await
            .unwrap(),
        AttemptStart::Started(_)
    ));
    // The payment and the order reference it too; detach those first so only the attempt's
    // foreign key stands in the way.
    db.raw
        .exec_uuid(
            "UPDATE payments SET enrollment_id = NULL WHERE enrollment_id = $1",
            s.enrollment_id.0,
        )
        .await
        .unwrap();
    db.raw
        .exec_uuid(
            "UPDATE orders SET enrollment_id = NULL WHERE enrollment_id = $1",
            s.enrollment_id.0,
        )
        .await
        .unwrap();
    let err = db
        .raw
        .exec_uuid("DELETE FROM enrollments WHERE id = $1", s.enrollment_id.0)
        .await
        .expect_err("an enrollment with exam attempts must not be deletable");
    assert_eq!(
        err.as_database_error().map(|d| d.kind()),
        Some(sqlx::error::ErrorKind::ForeignKeyViolation),
        "{err}"
    );
    if db.is_pg() {
        assert_eq!(
            err.as_database_error().and_then(|d| d.constraint()),
            Some("exam_attempts_enrollment_id_fkey")
        );
    }
    assert!(
        db.store
            .get_enrollment(s.enrollment_id)
            .await
            .unwrap()
            .is_some()
    );
}

// --- operations: reconciler leases, backlog, pause switch ----------------------------------

async fn lease_open_orders_leases_each_order_once(db: Db) {
    let c = course(&db, 10_000).await;
    let mut open = Vec::new();
    for m in 0..6 {
        open.push(order_at(&db, UserId::new(), &c, m).await);
    }
    let paid = order_at(&db, UserId::new(), &c, 0).await;
    buy(&db, &paid, "pk_lease_paid").await;
    let young = order_at(&db, UserId::new(), &c, 50).await;

    // Two leasers at once, repeatedly: together they get every open order, never one twice.
    let (a, b) = tokio::join!(
        db.store.lease_open_orders("a", t(40), t(45), t(30), 4),
        db.store.lease_open_orders("b", t(40), t(45), t(30), 4),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 6, "a={a:?} b={b:?}");
    let ids: HashSet<OrderId> = a.iter().chain(&b).map(|o| o.order_id.clone()).collect();
    assert_eq!(ids.len(), 6, "an order was leased twice");
    assert!(!ids.contains(&paid.order_id));
    assert!(!ids.contains(&young.order_id), "younger than older_than");
    // Oldest first.
    let first = if a.len() >= b.len() { &a } else { &b };
    assert!(first.windows(2).all(|w| w[0].updated_at <= w[1].updated_at));

    // While the leases hold, nobody gets them; once expired, they are free again.
    let again = db
        .store
        .lease_open_orders("c", t(44), t(50), t(30), 100)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    let later = db
        .store
        .lease_open_orders("c", t(45), t(50), t(30), 100)
        .await
        .unwrap();
    assert_eq!(later.len(), 6);
    // Leasing is not a state change: no event, updated_at unchanged.
    let o = db
        .store
        .get_order(&open[0].order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.updated_at, open[0].updated_at);
    assert_eq!(
        kinds(&db.store.order_events(&o.order_id).await.unwrap()),
        ["order.created"]
    );
}

async fn concurrent_leasers_never_share(db: Db) {
    let c = course(&db, 10_000).await;
    for m in 0..20 {
        order_at(&db, UserId::new(), &c, m).await;
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .lease_open_orders(&format!("w{i}"), t(40), t(45), t(30), 5)
                .await
                .unwrap()
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for task in tasks {
        for o in task.await.unwrap() {
            total += 1;
            assert!(
                seen.insert(o.order_id.clone()),
                "{} leased twice",
                o.order_id
            );
        }
    }
    assert_eq!(total, 20);
}

async fn open_order_backlog_counts_open_orders(db: Db) {
    let empty = db.store.open_order_backlog(t(100)).await.unwrap();
    assert_eq!(empty, (0, None));
    let c = course(&db, 10_000).await;
    let o1 = order_at(&db, UserId::new(), &c, 1).await;
    let _o2 = order_at(&db, UserId::new(), &c, 2).await;
    let paid = order_at(&db, UserId::new(), &c, 0).await;
    buy(&db, &paid, "pk_backlog_paid").await;
    claim(&db, &o1, "pk_backlog_1", 3).await;
    let b = db.store.open_order_backlog(t(100)).await.unwrap();
    assert_eq!(b, (2, Some(t(1))));
}

async fn pause_switch_is_stored_and_logged(db: Db) {
    let initial = db.store.payment_controls().await.unwrap();
    assert!(!initial.paused);
    let paused = db
        .store
        .set_payments_paused(true, Some("amount mismatches"), &ctx("service_role", 5))
        .await
        .unwrap();
    assert!(paused.paused);
    assert_eq!(paused.reason.as_deref(), Some("amount mismatches"));
    assert_eq!(paused.updated_by, "service_role");
    assert_eq!(paused.updated_at, t(5));
    assert_eq!(db.store.payment_controls().await.unwrap(), paused);
    let resumed = db
        .store
        .set_payments_paused(false, None, &ctx("ops", 6))
        .await
        .unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.reason, None);
    assert_eq!(
        db.raw
            .count("SELECT count(*) FROM payment_events WHERE kind IN ('payments.paused', 'payments.resumed') AND order_id IS NULL")
            .await,
        2
    );
}

fn kinds(events: &[store::Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

// --- abuse caps and retention ----------------------------------------------------------------

fn capped(user: UserId, course: &Course, minutes: i64, cap: u32) -> NewOrder {
    NewOrder {
        order_id: OrderId::generate(),
        user_id: user,
        course_id: course.id,
        amount: course.price,
        order_name: course.title.clone(),
        now: t(minutes),
        expires_at: t(minutes + 30),
        ctx: ctx("user:capped", minutes),
        max_open_per_user: Some(cap),
    }
}

async fn create_order_caps_open_orders_per_user(db: Db) {
    let user = UserId::new();
    let courses = [
        course(&db, 10_000).await,
        course(&db, 20_000).await,
        course(&db, 30_000).await,
    ];
    for c in &courses[..2] {
        db.store.create_order(capped(user, c, 0, 2)).await.unwrap();
    }
    let before = db.raw.count("SELECT count(*) FROM orders").await;
    let err = db
        .store
        .create_order(capped(user, &courses[2], 1, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooManyOpenOrders), "{err:?}");
    assert_eq!(db.raw.count("SELECT count(*) FROM orders").await, before);
    // Another user is not affected; no cap means no cap.
    db.store
        .create_order(capped(UserId::new(), &courses[2], 1, 2))
        .await
        .unwrap();
    // Already enrolled wins over the cap: the clearer answer.
    let mine = order(&db, user, &courses[2]).await;
    buy(&db, &mine, "pk_cap_enrolled").await;
    let err = db
        .store
        .create_order(capped(user, &courses[2], 3, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyEnrolled), "{err:?}");
    // Expired orders do not count: 31 minutes later the first two are past their expiry.
    db.store
        .create_order(capped(user, &courses[0], 31, 2))
        .await
        .unwrap();
}

async fn lease_priority_and_abandoned_orders(db: Db) {
    let c = course(&db, 10_000).await;
    // Oldest first by time, but the classes must win: an expired abandoned checkout (created
    // at 0, expired at 30), a payable abandoned one (created at 20), a PENDING order a confirm
    // reached and released (payment key), a CONFIRMING one (created last).
    let expired = order_at(&db, UserId::new(), &c, 0).await;
    let payable = order_at(&db, UserId::new(), &c, 20).await;
    let released = order_at(&db, UserId::new(), &c, 21).await;
    claim(&db, &released, "pk_prio_released", 22).await;
    assert!(
        db.store
            .release_order(&released.order_id, &ctx("system", 23))
            .await
            .unwrap()
    );
    let confirming = order_at(&db, UserId::new(), &c, 24).await;
    claim(&db, &confirming, "pk_prio_confirming", 25).await;
    let leased = db
        .store
        .lease_open_orders("p", t(40), t(41), t(39), 10)
        .await
        .unwrap();
    let ids: Vec<&OrderId> = leased.iter().map(|o| &o.order_id).collect();
    assert_eq!(
        ids,
        [
            &confirming.order_id,
            &released.order_id,
            &payable.order_id,
            &expired.order_id
        ]
    );
    // A budget of one takes the CONFIRMING order, however many others wait.
    let one = db
        .store
        .lease_open_orders("p", t(41), t(42), t(39), 1)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].order_id, confirming.order_id);
    // Lookups after expiry are counted per lease: the expired order has had one (t41's
    // budget of one did not take it), so it is not abandoned at 2; the payable one never is.
    assert!(
        db.store
            .abandoned_orders(t(42), 2, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = db
        .store
        .lease_open_orders("p", t(42), t(43), t(39), 10)
        .await
        .unwrap();
    assert!(again.iter().any(|o| o.order_id == expired.order_id));
    let abandoned = db.store.abandoned_orders(t(43), 2, 10).await.unwrap();
    assert_eq!(abandoned, std::slice::from_ref(&expired.order_id));
    assert!(
        db.store
            .abandoned_orders(t(43), 3, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn purge_expired_deletes_in_batches(db: Db) {
    let s = db.store.as_ref();
    for i in 0..5 {
        s.remember_idempotency_key("confirm:u", &format!("old-{i}"), "fp", t(0), t(10))
            .await
            .unwrap();
        s.remember_once("webhook-sig", &format!("old-{i}"), t(0), t(10))
            .await
            .unwrap();
    }
    s.remember_once("toss-transmission", "old-tx", t(0), t(10))
        .await
        .unwrap();
    s.remember_idempotency_key("confirm:u", "live", "fp", t(0), t(100))
        .await
        .unwrap();
    s.remember_once("webhook-sig", "live", t(0), t(100))
        .await
        .unwrap();
    let keys = || db.raw.count("SELECT count(*) FROM idempotency_keys");
    let tokens = || db.raw.count("SELECT count(*) FROM one_time_tokens");
    assert_eq!((keys().await, tokens().await), (6, 7));

    // Nothing has expired yet.
    let none = s.purge_expired(t(9), 4).await.unwrap();
    assert!(none.iter().all(|p| p.rows == 0), "{none:?}");
    assert_eq!((keys().await, tokens().await), (6, 7));

    // Batches of 4: the tables shrink batch by batch, the live rows stay.
    let first = s.purge_expired(t(10), 4).await.unwrap();
    let rows = |purged: &[store::PurgedRows], table: &str| -> u64 {
        purged
            .iter()
            .filter(|p| p.table == table)
            .map(|p| p.rows)
            .sum()
    };
    assert_eq!(rows(&first, "idempotency_keys"), 4);
    assert_eq!(rows(&first, "one_time_tokens"), 4);
    assert_eq!((keys().await, tokens().await), (2, 3));
    let second = s.purge_expired(t(10), 4).await.unwrap();
    assert_eq!(rows(&second, "idempotency_keys"), 1);
    assert_eq!(rows(&second, "one_time_tokens"), 2);
    assert_eq!((keys().await, tokens().await), (1, 1));
    let kinds: HashSet<&str> = first
        .iter()
        .chain(&second)
        .filter(|p| p.table == "one_time_tokens")
        .map(|p| p.kind.as_str())
        .collect();
    assert_eq!(kinds, HashSet::from(["webhook-sig", "toss-transmission"]));
    assert!(
        s.purge_expired(t(10), 4)
            .await
            .unwrap()
            .iter()
            .all(|p| p.rows == 0)
    );
    // What is live still answers as remembered.
    assert!(
        !s.remember_once("webhook-sig", "live", t(11), t(111))
            .await
            .unwrap()
    );
}

/// Rolling back one release: the previous binary starts on a database that a newer release
/// migrated further (a migration it does not know is applied).
async fn migrations_from_a_newer_release_are_tolerated(db: Db) {
    let sql = if db.is_pg() {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101, 'from a newer release', true, '\\x00'::bytea, 0)"
    } else {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101, 'from a newer release', 1, X'00', 0)"
    };
    db.raw.exec(sql).await.unwrap();
    db.store.migrate().await.unwrap();
    db.store.ready().await.unwrap();
}

// --- the transition tables (domain::transition), on both backends ----------------------------

/// The situations an order can be in when an event reaches it: its status, and whether a
/// payment is recorded for it (a FAILED order has one only as a duplicate payment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Situation {
    Pending,
    Confirming,
    Paid,
    Failed,
    DuplicatePayment,
    Expired,
    Refunded,
    /// REFUNDED because the bank took the virtual-account deposit back.
    Reversed,
}

impl Situation {
    const ALL: [Situation; 8] = [
        Situation::Pending,
        Situation::Confirming,
        Situation::Paid,
        Situation::Failed,
        Situation::DuplicatePayment,
        Situation::Expired,
        Situation::Refunded,
        Situation::Reversed,
    ];

    fn status(self) -> OrderStatus {
        match self {
            Situation::Pending => OrderStatus::Pending,
            Situation::Confirming => OrderStatus::Confirming,
            Situation::Paid => OrderStatus::Paid,
            Situation::Failed | Situation::DuplicatePayment => OrderStatus::Failed,
            Situation::Expired => OrderStatus::Expired,
            Situation::Refunded | Situation::Reversed => OrderStatus::Refunded,
        }
    }

    fn has_payment(self) -> bool {
        matches!(
            self,
            Situation::Paid
                | Situation::DuplicatePayment
                | Situation::Refunded
                | Situation::Reversed
        )
    }
}

/// An order of a fresh user and course brought into `situation`; with `sibling`, another order
/// of the same user for the course is claimed (CONFIRMING) first where that can still happen.
/// Returns the order and the payment key recorded for it, if any.
async fn order_in(db: &Db, situation: Situation, sibling: bool) -> (Order, String) {
    let c = course(db, 10_000).await;
    let user = UserId::new();
    let o = order(db, user, &c).await;
    let pk = format!("pk_tr_{}", o.order_id.as_str());
    let claim_sibling = || async {
        let other = order(db, user, &c).await;
        claim(
            db,
            &other,
            &format!("pk_sib_{}", other.order_id.as_str()),
            1,
        )
        .await;
    };
    match situation {
        Situation::Pending => {}
        Situation::Confirming => {
            claim(db, &o, &pk, 1).await;
        }
        Situation::Paid => {
            buy(db, &o, &pk).await;
        }
        Situation::Failed | Situation::Expired => {
            let to = situation.status();
            assert!(
                db.store
                    .fail_order(&o.order_id, to, None, &ctx("t", 1))
                    .await
                    .unwrap()
            );
        }
        Situation::DuplicatePayment => {
            claim_sibling().await;
            db.store
                .settle(settlement(&o, &pk, "webhook", 2))
                .await
                .unwrap();
        }
        Situation::Refunded => {
            buy(db, &o, &pk).await;
            let tx = format!("tx_{pk}");
            db.store
                .record_cancellation(cancellation(&pk, 0, &[(&tx, 10_000)], 3))
                .await
                .unwrap();
        }
        Situation::Reversed => {
            buy(db, &o, &pk).await;
            let tx = format!("deposit-reversal-{pk}");
            db.store
                .record_cancellation(reversal(&pk, &tx, 10_000, 3))
                .await
                .unwrap();
        }
    }
    if sibling {
        claim_sibling().await;
    }
    let now = db.store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(now.status, situation.status(), "setting up {situation:?}");
    (now, pk)
}

/// Every order event in every situation it can meet: the store's outcome is the table's.
async fn order_transitions_follow_the_table(db: Db) {
    use domain::OrderEvent;
    for situation in Situation::ALL {
        for &event in OrderEvent::ALL {
            let duplicate = event == OrderEvent::Settle { duplicate: true };
            // Another order of the user for the course can only be CONFIRMING while this one
            // is neither CONFIRMING nor PAID (orders_one_active_per_course) nor enrolled.
            if duplicate
                && matches!(
                    situation,
                    Situation::Confirming | Situation::Paid | Situation::DuplicatePayment
                )
            {
                continue;
            }
            // A refund or a second deposit needs a recorded payment.
            if matches!(event, OrderEvent::Refund | OrderEvent::Redeposit)
                && !situation.has_payment()
            {
                continue;
            }
            let (o, pk) = order_in(&db, situation, duplicate).await;
            let recorded = db.store.payment_for_order(&o.order_id).await.unwrap();
            let from = situation.status();
            let applies = from.after(event).is_some();
            match event {
                OrderEvent::Claim => {
                    let out = db
                        .store
                        .claim_order(claim_req(&o, &format!("{pk}_claim"), 5))
                        .await
                        .unwrap();
                    assert_eq!(matches!(out, ClaimOutcome::Claimed(_)), applies);
                }
                OrderEvent::Release => {
                    let moved = db.store.release_order(&o.order_id, &ctx("t", 5)).await;
                    assert_eq!(moved.unwrap(), applies);
                }
                OrderEvent::Fail | OrderEvent::Expire => {
                    let to = if event == OrderEvent::Fail {
                        OrderStatus::Failed
                    } else {
                        OrderStatus::Expired
                    };
                    let moved = db
                        .store
                        .fail_order(&o.order_id, to, Some("TEST"), &ctx("t", 5))
                        .await;
                    assert_eq!(moved.unwrap(), applies);
                }
                OrderEvent::Settle { .. } => {
                    // An order with a payment sees its own payment again (a replay: the
                    // approval recorded by `buy`); the rest get their first one.
                    let mut replay = settlement(&o, &pk, "reconciler", 5);
                    replay.approved_at = t(2);
                    let settled = db.store.settle(replay).await.unwrap();
                    assert_eq!(settled.newly_settled, !situation.has_payment());
                }
                OrderEvent::Redeposit => {
                    // Toss reports the payment captured again, approved later than recorded.
                    db.store
                        .settle(settlement(&o, &pk, "webhook", 5))
                        .await
                        .unwrap();
                }
                OrderEvent::Refund => {
                    // The cancel the Refunded situation already recorded, new to the others.
                    let tx = format!("tx_{pk}");
                    db.store
                        .record_cancellation(cancellation(&pk, 0, &[(&tx, 10_000)], 5))
                        .await
                        .unwrap();
                }
            }
            let after = db.store.get_order(&o.order_id).await.unwrap().unwrap();
            let expected = match event {
                // The payment is recorded already: a settle is its replay and changes nothing.
                OrderEvent::Settle { .. } if situation.has_payment() => from,
                // A later capture of a recorded payment is a replay unless the rule says it
                // is a second deposit.
                OrderEvent::Redeposit => {
                    let p = recorded.expect("a recorded payment");
                    let again = domain::transition::is_redeposit(
                        p.status,
                        from,
                        false,
                        p.approved_at,
                        t(5),
                    );
                    assert_eq!(again, situation == Situation::Reversed, "{situation:?}");
                    if again {
                        from.after(event).unwrap()
                    } else {
                        from
                    }
                }
                _ => from.after(event).unwrap_or(from),
            };
            assert_eq!(
                after.status, expected,
                "{situation:?} + {event:?}: the store and domain::transition disagree"
            );
            if expected == OrderStatus::Failed && duplicate {
                assert_eq!(
                    after.failure_code.as_deref(),
                    Some(domain::transition::DUPLICATE_PAYMENT)
                );
            }
            if event == OrderEvent::Refund
                && !matches!(situation, Situation::Refunded | Situation::Reversed)
            {
                let enrollment = db
                    .store
                    .get_enrollment(after.enrollment_id.expect("enrolled by the payment"))
                    .await
                    .unwrap()
                    .unwrap();
                let expected = if situation == Situation::DuplicatePayment {
                    // The enrollment is the first order's, so it stays.
                    EnrollmentStatus::Enrolled
                } else {
                    EnrollmentStatus::Enrolled
                        .after(domain::EnrollmentEvent::Refund)
                        .unwrap()
                };
                assert_eq!(enrollment.status, expected, "{situation:?} + refund");
            }
        }
    }
}

/// Payment and refund statuses: partial then full cancellation, a refused and a recorded
/// refund request, and events that no longer apply.
async fn payment_and_refund_transitions_follow_the_table(db: Db) {
    use domain::RefundEvent;
    let c = course(&db, 10_000).await;
    let o = order(&db, UserId::new(), &c).await;
    let s = buy(&db, &o, "pk_tr_pay").await;
    let payment = db.store.get_payment(s.payment_id).await.unwrap().unwrap();
    assert!(payment.status.is_refundable());

    // Refused: REQUESTED → FAILED, once.
    let refused = begun(&db, new_refund(s.payment_id, Some(3_000), 3)).await;
    assert_eq!(refused.status, RefundStatus::Requested);
    assert!(
        db.store
            .fail_refund(refused.id, "REJECT", &ctx("t", 4))
            .await
            .unwrap()
    );
    let refused = db.store.get_refund(refused.id).await.unwrap().unwrap();
    assert_eq!(
        Some(refused.status),
        RefundStatus::Requested.after(RefundEvent::Refused)
    );
    assert_eq!(refused.status.after(RefundEvent::Refused), None);
    assert!(
        !db.store
            .fail_refund(refused.id, "REJECT", &ctx("t", 5))
            .await
            .unwrap()
    );

    // Recorded: REQUESTED → DONE; the balance drops and the payment follows it.
    let asked = begun(&db, new_refund(s.payment_id, Some(3_000), 6)).await;
    let rec = db
        .store
        .record_cancellation(cancellation("pk_tr_pay", 7_000, &[("tx_tr_1", 3_000)], 7))
        .await
        .unwrap();
    assert_eq!(
        rec.payment.status,
        payment
            .status
            .after_cancel(PaymentStatus::PartialCanceled, 7_000)
    );
    assert_eq!(rec.payment.status, PaymentStatus::PartialCanceled);
    let asked = db.store.get_refund(asked.id).await.unwrap().unwrap();
    assert_eq!(
        Some(asked.status),
        RefundStatus::Requested.after(RefundEvent::Recorded)
    );
    assert!(
        !db.store
            .fail_refund(asked.id, "LATE", &ctx("t", 8))
            .await
            .unwrap()
    );
    assert!(rec.payment.status.is_refundable());

    // The rest: PARTIAL_CANCELED → CANCELED, no longer refundable.
    let rec = db
        .store
        .record_cancellation(cancellation(
            "pk_tr_pay",
            0,
            &[("tx_tr_1", 3_000), ("tx_tr_2", 7_000)],
            9,
        ))
        .await
        .unwrap();
    assert_eq!(
        rec.payment.status,
        PaymentStatus::PartialCanceled.after_cancel(PaymentStatus::Canceled, 0)
    );
    assert!(!rec.payment.status.is_refundable());
    assert!(matches!(
        db.store
            .begin_refund(new_refund(s.payment_id, None, 10))
            .await
            .unwrap(),
        RefundBegin::NotAllowed { .. }
    ));
    // A stale report with a higher balance moves nothing back.
    let stale = db
        .store
        .record_cancellation(cancellation("pk_tr_pay", 7_000, &[("tx_tr_1", 3_000)], 11))
        .await
        .unwrap();
    assert_eq!(stale.payment.status, PaymentStatus::Canceled);
    assert_eq!(stale.payment.balance, won(0));
}

/// An order that ends after its virtual account was issued and before a deposit is recorded is
/// due for an account check from when it ended; a lease hides it until the lease runs out, two
/// concurrent leasers never share one, and the caller's verdict ends the checks or sets the
/// next one. Open orders, ended orders without an account and paid orders are never due.
async fn ended_orders_with_an_issued_account_are_checked(db: Db) {
    let c = course(&db, 10_000).await;
    let issued = |minutes: i64| {
        let db = &db;
        let c = &c;
        async move {
            let o = order(db, UserId::new(), c).await;
            let pk = format!("pk_va_{}", o.order_id.as_str());
            claim(db, &o, &pk, 1).await;
            assert!(
                db.store
                    .record_deposit_secret(&o.order_id, "va-secret")
                    .await
                    .unwrap()
            );
            if minutes > 0 {
                assert!(
                    db.store
                        .fail_order(&o.order_id, OrderStatus::Expired, None, &ctx("t", minutes))
                        .await
                        .unwrap()
                );
            }
            o
        }
    };
    let ended = issued(5).await;
    let _open = issued(0).await;
    let no_account = order(&db, UserId::new(), &c).await;
    db.store
        .fail_order(
            &no_account.order_id,
            OrderStatus::Failed,
            None,
            &ctx("t", 5),
        )
        .await
        .unwrap();
    let paid = order(&db, UserId::new(), &c).await;
    buy(&db, &paid, "pk_va_paid").await;
    db.store
        .record_deposit_secret(&paid.order_id, "va-secret")
        .await
        .unwrap();
    let ids = |orders: Vec<Order>| -> Vec<String> {
        let mut ids: Vec<String> = orders.into_iter().map(|o| o.order_id.to_string()).collect();
        ids.sort();
        ids
    };
    let lease = |now: i64, until: i64| db.store.lease_account_checks(t(now), t(until), 10);

    assert_eq!(ids(lease(4, 20).await.unwrap()), [] as [String; 0]);
    assert_eq!(
        ids(lease(6, 20).await.unwrap()),
        [ended.order_id.to_string()]
    );
    assert_eq!(
        ids(lease(7, 20).await.unwrap()),
        [] as [String; 0],
        "leased until t(20)"
    );
    db.store
        .account_checked(&ended.order_id, Some(t(30)))
        .await
        .unwrap();
    assert_eq!(ids(lease(25, 40).await.unwrap()), [] as [String; 0]);
    assert_eq!(
        ids(lease(31, 40).await.unwrap()),
        [ended.order_id.to_string()]
    );
    db.store
        .account_checked(&ended.order_id, None)
        .await
        .unwrap();
    assert_eq!(ids(lease(10_000, 10_010).await.unwrap()), [] as [String; 0]);
    // A verdict after the checks ended does not start them again.
    db.store
        .account_checked(&ended.order_id, Some(t(50)))
        .await
        .unwrap();
    assert_eq!(ids(lease(10_000, 10_010).await.unwrap()), [] as [String; 0]);

    // Two reconcilers at once: every due order leased exactly once.
    let mut due = Vec::new();
    for _ in 0..6 {
        due.push(issued(8).await.order_id.to_string());
    }
    due.sort();
    let (a, b) = tokio::join!(
        db.store.lease_account_checks(t(9), t(60), 4),
        db.store.lease_account_checks(t(9), t(60), 4)
    );
    let (a, b) = (ids(a.unwrap()), ids(b.unwrap()));
    assert!(a.iter().all(|id| !b.contains(id)), "{a:?} {b:?}");
    let mut both: Vec<String> = a.into_iter().chain(b).collect();
    both.extend(ids(lease(9, 60).await.unwrap()));
    both.sort();
    assert_eq!(both, due);
}

/// What a payment captured minus its balance is the sum of its DONE refunds; returns the
/// payment.
async fn money_adds_up(db: &Db, payment_id: domain::PaymentId) -> store::Payment {
    let p = db.store.get_payment(payment_id).await.unwrap().unwrap();
    let refunds = db.store.payment_refunds(payment_id).await.unwrap();
    let refunded: i64 = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Done)
        .map(|r| r.amount.won())
        .sum();
    assert_eq!(
        p.amount.won() - p.balance.won(),
        refunded,
        "{p:?} {refunds:?}"
    );
    p
}

/// A cancel only becomes a refund row as far as Toss's balance shows its money gone
/// (`domain::transition::cancels_to_record`): reports naming more cancels than that — a new key
/// for a payment already at zero, cancels adding up to more than captured − balance — leave the
/// extra ones out, coursepay's own REQUESTED refund is the one kept, a cancel the balance does
/// account for is recorded even when the balance does not drop with it, and concurrent reports
/// never add up to more than the balance shows.
async fn refund_rows_never_exceed_what_the_balance_shows_gone(db: Db) {
    let c = course(&db, 10_000).await;

    // A deposit the bank reversed (recorded under coursepay's key), then Toss's cancel closing
    // that account under its own key: the money is on record once.
    let pk = "pk_money_reversed";
    let s = buy(&db, &order(&db, UserId::new(), &c).await, pk).await;
    db.store
        .record_cancellation(reversal(pk, "deposit-reversal-m1", 10_000, 3))
        .await
        .unwrap();
    let closed = cancellation(pk, 0, &[("tx_money_close", 10_000)], 4);
    let rec = db.store.record_cancellation(closed).await.unwrap();
    assert_eq!((rec.refunds_recorded, rec.cancels_left_out), (0, 1));
    money_adds_up(&db, s.payment_id).await;

    // Cancels adding up to more than the balance dropped: only what fits, newest first; the
    // older one is recorded once a later report shows its money gone too.
    let pk = "pk_money_over";
    let s = buy(&db, &order(&db, UserId::new(), &c).await, pk).await;
    let both = [("tx_over_a", 3_000), ("tx_over_b", 3_000)];
    let rec = db
        .store
        .record_cancellation(cancellation(pk, 7_000, &both, 3))
        .await
        .unwrap();
    assert_eq!((rec.refunds_recorded, rec.cancels_left_out), (1, 1));
    let p = money_adds_up(&db, s.payment_id).await;
    assert_eq!(p.balance, won(7_000));
    let rec = db
        .store
        .record_cancellation(cancellation(pk, 4_000, &both, 4))
        .await
        .unwrap();
    assert_eq!((rec.refunds_recorded, rec.cancels_left_out), (1, 0));
    money_adds_up(&db, s.payment_id).await;

    // Coursepay's own refund is the one recorded, not an unknown cancel of the same amount.
    let pk = "pk_money_mine";
    let s = buy(&db, &order(&db, UserId::new(), &c).await, pk).await;
    let mine = begun(&db, new_refund(s.payment_id, Some(3_000), 3)).await;
    let rec = db
        .store
        .record_cancellation(cancellation(
            pk,
            7_000,
            &[("tx_mine_stray", 3_000), ("tx_mine", 3_000)],
            4,
        ))
        .await
        .unwrap();
    assert_eq!((rec.refunds_recorded, rec.cancels_left_out), (1, 1));
    let mine = db.store.get_refund(mine.id).await.unwrap().unwrap();
    assert_eq!(mine.status, RefundStatus::Done);
    assert_eq!(mine.transaction_key.as_deref(), Some("tx_mine"));
    money_adds_up(&db, s.payment_id).await;

    // The balance dropped with no cancel named; the cancel named later is recorded although the
    // balance does not drop again: no money gone without its row.
    let pk = "pk_money_late";
    let s = buy(&db, &order(&db, UserId::new(), &c).await, pk).await;
    db.store
        .record_cancellation(cancellation(pk, 7_000, &[], 3))
        .await
        .unwrap();
    let rec = db
        .store
        .record_cancellation(cancellation(pk, 7_000, &[("tx_late", 3_000)], 4))
        .await
        .unwrap();
    assert_eq!((rec.refunds_recorded, rec.cancels_left_out), (1, 0));
    assert_eq!(rec.payment.updated_at, t(4));
    money_adds_up(&db, s.payment_id).await;

    // Reports racing each other, each naming the whole amount under its own key: one is
    // recorded.
    let pk = "pk_money_race";
    let s = buy(&db, &order(&db, UserId::new(), &c).await, pk).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let store = db.store.clone();
        let tx = format!("tx_money_race_{i}");
        let c = cancellation(pk, 0, &[(&tx, 10_000)], 3 + i);
        tasks.spawn(async move { store.record_cancellation(c).await.unwrap() });
    }
    let results = tasks.join_all().await;
    assert_eq!(results.iter().map(|r| r.refunds_recorded).sum::<u32>(), 1);
    assert_eq!(results.iter().map(|r| r.cancels_left_out).sum::<u32>(), 9);
    let p = money_adds_up(&db, s.payment_id).await;
    assert_eq!(p.balance, won(0));

    // A report naming one cancel twice (Toss's mistake): recorded once, on both backends, and
    // the duplicate takes no room from the other cancel.
    let pk = "pk_money_twice";
    let s = buy(&db, &order(&db, UserId::new(), &c).await, pk).await;
    let twice = [
        ("tx_twice", 3_000),
        ("tx_other", 2_000),
        ("tx_twice", 3_000),
    ];
    let rec = db
        .store
        .record_cancellation(cancellation(pk, 5_000, &twice, 3))
        .await
        .unwrap();
    assert_eq!((rec.refunds_recorded, rec.cancels_left_out), (2, 0));
    let p = money_adds_up(&db, s.payment_id).await;
    assert_eq!(p.balance, won(5_000));
}

/// A virtual-account deposit reversed by the bank, then deposited again: the same payment,
/// enrollment and order come back (never a second row), deliveries racing each other
/// re-enroll once, a replay of either deposit changes nothing, and what the payment captured
/// minus its balance is always the sum of its refunds.
async fn a_second_deposit_after_a_reversal_reenrolls(db: Db) {
    let c = course(&db, 10_000).await;
    let user = UserId::new();
    let o = order(&db, user, &c).await;
    let pk = "pk_redeposit";
    let first = buy(&db, &o, pk).await;
    let rec = db
        .store
        .record_cancellation(reversal(pk, "deposit-reversal-tx1", 10_000, 3))
        .await
        .unwrap();
    assert_eq!(rec.payment.status, PaymentStatus::WaitingForDeposit);
    assert!(rec.enrollment_revoked);
    assert!(!rec.payment.status.is_refundable());
    money_adds_up(&db, first.payment_id).await;

    // A lookup answered before the reversal (the first deposit's approval): a replay.
    let stale = db
        .store
        .settle(settlement(&o, pk, "webhook", 2))
        .await
        .unwrap();
    assert!(!stale.newly_settled);
    assert_eq!(stale.order.status, OrderStatus::Refunded);

    // The second deposit, delivered twice at once.
    let again = settlement(&o, pk, "webhook", 5);
    let (a, b) = tokio::join!(
        db.store.settle(again.clone()),
        db.store.settle(again.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        u8::from(a.newly_settled) + u8::from(b.newly_settled),
        1,
        "exactly one delivery re-enrolls"
    );
    for s in [&a, &b] {
        assert_eq!(s.order.status, OrderStatus::Paid);
        assert_eq!(s.payment_id, first.payment_id);
        assert_eq!(s.enrollment_id, first.enrollment_id);
    }
    let p = money_adds_up(&db, first.payment_id).await;
    assert_eq!((p.amount.won(), p.balance.won()), (20_000, 10_000));
    assert_eq!(p.status, PaymentStatus::Done);
    assert!(p.status.is_refundable());
    let enrollments = db.store.list_enrollments(user).await.unwrap();
    assert_eq!(enrollments.len(), 1);
    assert_eq!(enrollments[0].id, first.enrollment_id);
    assert_eq!(enrollments[0].status, EnrollmentStatus::Enrolled);

    // Late deliveries of either deposit change nothing.
    for minutes in [2, 5] {
        let s = db
            .store
            .settle(settlement(&o, pk, "webhook", minutes))
            .await
            .unwrap();
        assert!(!s.newly_settled);
        assert_eq!(s.order.status, OrderStatus::Paid);
    }
    let p2 = money_adds_up(&db, first.payment_id).await;
    assert_eq!((p2.amount, p2.balance), (p.amount, p.balance));
    let events = db.store.order_events(&o.order_id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "payment.redeposited")
            .count(),
        1,
        "{kinds:?}"
    );

    // Reversed once more: the course goes again, and the money still adds up.
    let rec = db
        .store
        .record_cancellation(reversal(pk, "deposit-reversal-tx2", 10_000, 6))
        .await
        .unwrap();
    assert!(rec.enrollment_revoked);
    let p = money_adds_up(&db, first.payment_id).await;
    assert_eq!((p.amount.won(), p.balance.won()), (20_000, 0));

    // A third deposit while another order of the buyer holds the course: that order keeps it,
    // this one stays REFUNDED (the money is left for an operator, never a second enrollment).
    let other = order(&db, user, &c).await;
    claim(&db, &other, "pk_redeposit_other", 7).await;
    let s = db
        .store
        .settle(settlement(&o, pk, "webhook", 8))
        .await
        .unwrap();
    assert!(!s.newly_settled);
    assert_eq!(s.order.status, OrderStatus::Refunded);
    money_adds_up(&db, first.payment_id).await;
}

// --- both backends ---------------------------------------------------------------------------

store::per_backend!(
    |b| Db::new(b).await;
    migrations_from_a_newer_release_are_tolerated,
    create_order_caps_open_orders_per_user,
    lease_priority_and_abandoned_orders,
    purge_expired_deletes_in_batches,
    ready_and_migrate_twice,
    courses_crud,
    create_order_refuses_already_enrolled,
    claim_happy_path_then_not_claimed,
    claim_refusals_leave_order_unchanged,
    settle_records_payment_and_enrollment,
    a_second_deposit_after_a_reversal_reenrolls,
    refund_rows_never_exceed_what_the_balance_shows_gone,
    ended_orders_with_an_issued_account_are_checked,
    settle_conflicting_keys_are_refused,
    concurrent_settles_make_one_payment,
    concurrent_claims_one_winner,
    concurrent_claims_of_sibling_orders_one_winner,
    second_order_sees_enrolled_elsewhere,
    settle_of_failed_or_expired_order_records_payment,
    duplicate_payment_is_kept_and_flagged,
    release_and_fail_only_from_open_states,
    open_orders_oldest_first,
    idempotency_keys,
    remember_once,
    forget_once_and_deposit_secret,
    events_are_appended_in_order_and_immutable,
    enrollment_foreign_keys,
    round_trips,
    lease_open_orders_leases_each_order_once,
    concurrent_leasers_never_share,
    open_order_backlog_counts_open_orders,
    pause_switch_is_stored_and_logged,
    refunds_begin_record_and_fail,
    concurrent_refund_requests_one_passes,
    concurrent_recordings_make_one_refund_row,
    duplicate_payment_refund_keeps_the_enrollment,
    stuck_refunds_oldest_first,
    exam_attempts_gated_limited_and_submitted_once,
    concurrent_attempt_starts_respect_the_limit,
    concurrent_submits_one_wins,
    enrollment_with_started_attempts_cannot_be_deleted,
    order_transitions_follow_the_table,
    payment_and_refund_transitions_follow_the_table,
);

// --- PostgreSQL only: the races a snapshot cannot see -----------------------------------------
//
// SQLite serializes writers (BEGIN IMMEDIATE), so these interleavings cannot happen there. On
// PostgreSQL they are forced deterministically: a raw transaction changes a row and stays open,
// the store's statement starts (its snapshot misses the change) and blocks on that transaction,
// then the transaction commits.

mod postgres_races {
    use super::*;

    /// Wait until `at_least` backends are blocked by `blocker` (the raw transaction's backend
    /// pid), directly or behind another blocked backend.
    async fn blocked_by(pool: &PgPool, blocker: i32, at_least: i64) {
        for _ in 0..1000 {
            let n: i64 = sqlx::query_scalar(
                "WITH RECURSIVE waiting AS (
                     SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))
                     UNION
                     SELECT a.pid FROM pg_stat_activity a, waiting w
                     WHERE w.pid = ANY(pg_blocking_pids(a.pid))
                 )
                 SELECT count(*) FROM waiting",
            )
            .bind(blocker)
            .fetch_one(pool)
            .await
            .unwrap();
            if n >= at_least {
                return;
            }
            // Polling for a condition PostgreSQL reports, not guessing a delay.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("the store's statements never blocked on the open transaction");
    }

    async fn setup() -> (Db, PgPool) {
        let db = Db::postgres().await;
        let Raw::Pg(pool) = &db.raw else {
            unreachable!()
        };
        let pool = pool.clone();
        (db, pool)
    }

    /// Another order of the user becomes CONFIRMING after the claim's snapshot: the partial
    /// unique index refuses the claim, reported as NotClaimed + enrolled_elsewhere.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn claim_refused_by_index_after_snapshot() {
        let (db, pool) = setup().await;
        let c = course(&db, 10_000).await;
        let user = UserId::new();
        let a = order(&db, user, &c).await;
        let b = order(&db, user, &c).await;

        let mut tx = pool.begin().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE orders SET status = 'CONFIRMING' WHERE order_id = $1")
            .bind(a.order_id.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();

        let store = db.store.clone();
        let req = claim_req(&b, "pk_index_b", 1);
        let claim = tokio::spawn(async move { store.claim_order(req).await });
        blocked_by(&pool, pid, 1).await;
        tx.commit().await.unwrap();

        match claim.await.unwrap().unwrap() {
            ClaimOutcome::NotClaimed {
                order,
                enrolled_elsewhere,
            } => {
                assert!(enrolled_elsewhere);
                assert_eq!(order, b);
            }
            other => panic!("{other:?}"),
        }
        let events = db.store.order_events(&b.order_id).await.unwrap();
        assert_eq!(kinds(&events), ["order.created"]);
    }

    /// The order itself changes after the claim's snapshot (a webhook settled it): the claim's
    /// UPDATE re-reads the row and refuses; the answer is the order as it is now, not the stale
    /// PENDING snapshot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn claim_answers_with_fresh_order_after_concurrent_change() {
        let (db, pool) = setup().await;
        let c = course(&db, 10_000).await;
        let o = order(&db, UserId::new(), &c).await;

        let mut tx = pool.begin().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE orders SET status = 'PAID' WHERE order_id = $1")
            .bind(o.order_id.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();

        let store = db.store.clone();
        let req = claim_req(&o, "pk_fresh_1", 1);
        let claim = tokio::spawn(async move { store.claim_order(req).await });
        blocked_by(&pool, pid, 1).await;
        tx.commit().await.unwrap();

        match claim.await.unwrap().unwrap() {
            ClaimOutcome::NotClaimed { order, .. } => assert_eq!(order.status, OrderStatus::Paid),
            other => panic!("{other:?}"),
        }
    }

    /// Another order of the user becomes PAID after the settle's snapshot: setting this one PAID
    /// hits the partial unique index; the settle re-runs and records a duplicate payment.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn settle_duplicate_detected_after_snapshot() {
        let (db, pool) = setup().await;
        let c = course(&db, 10_000).await;
        let user = UserId::new();
        let a = order(&db, user, &c).await;
        let b = order(&db, user, &c).await;

        let mut tx = pool.begin().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE orders SET status = 'PAID' WHERE order_id = $1")
            .bind(a.order_id.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();

        let store = db.store.clone();
        let s = settlement(&b, "pk_index_dup_b", "webhook", 3);
        let counter = Counter::new();
        let scoped = counter.clone();
        let settle = tokio::spawn(async move { scoped.scope(store.settle(s)).await });
        blocked_by(&pool, pid, 1).await;
        tx.commit().await.unwrap();

        let settled = settle.await.unwrap().unwrap();
        assert!(settled.newly_settled);
        assert_eq!(settled.order.status, OrderStatus::Failed);
        assert_eq!(
            settled.order.failure_code.as_deref(),
            Some("DUPLICATE_PAYMENT")
        );
        assert!(
            db.store
                .payment_for_order(&b.order_id)
                .await
                .unwrap()
                .is_some()
        );
        // The lost race cost one extra statement.
        assert_eq!(counter.get(), 2);
        let events = db.store.order_events(&b.order_id).await.unwrap();
        assert_eq!(kinds(&events), ["order.created", "payment.duplicate"]);
    }

    /// A refund of the payment becomes REQUESTED after begin_refund's snapshot (a concurrent
    /// request holding the payment lock): the pending sum cannot see it, the partial unique
    /// index refuses the insert, the re-run answers NotAllowed { in_progress }.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn refund_request_after_snapshot_is_refused_by_index() {
        let (db, pool) = setup().await;
        let c = course(&db, 10_000).await;
        let s = buy(&db, &order(&db, UserId::new(), &c).await, "pk_refund_index").await;

        let mut tx = pool.begin().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE")
            .bind(s.payment_id.0)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO refunds (id, payment_id, amount, reason, status, idempotency_key,
                                  requested_by, created_at, updated_at)
             VALUES ($1, $2, 10000, 'first', 'REQUESTED', 'k-first', 'service_role', now(), now())",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(s.payment_id.0)
        .execute(&mut *tx)
        .await
        .unwrap();

        let store = db.store.clone();
        let new = new_refund(s.payment_id, Some(1_000), 3);
        let second = tokio::spawn(async move { store.begin_refund(new).await });
        blocked_by(&pool, pid, 1).await;
        tx.commit().await.unwrap();

        match second.await.unwrap().unwrap() {
            RefundBegin::NotAllowed { in_progress, .. } => assert!(in_progress),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            db.store.payment_refunds(s.payment_id).await.unwrap().len(),
            1
        );
    }

    /// Attempts started by a concurrent transaction commit after start_attempt's snapshot: the
    /// UPDATE re-checks the counter on the newest row and refuses; the re-run reports the limit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn attempt_start_after_concurrent_starts_sees_the_limit() {
        let (db, pool) = setup().await;
        let c = course(&db, 10_000).await;
        let s = buy(&db, &order(&db, UserId::new(), &c).await, "pk_attempt_lock").await;

        let mut tx = pool.begin().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE enrollments SET exam_attempts_started = 3 WHERE id = $1")
            .bind(s.enrollment_id.0)
            .execute(&mut *tx)
            .await
            .unwrap();

        let store = db.store.clone();
        let enrollment = s.enrollment_id;
        let start = tokio::spawn(async move {
            store
                .start_attempt(enrollment, AttemptId::new(), 3, t(5))
                .await
        });
        blocked_by(&pool, pid, 1).await;
        tx.commit().await.unwrap();

        assert_eq!(
            start.await.unwrap().unwrap(),
            AttemptStart::LimitReached { used: 3 }
        );
        assert_eq!(db.raw.count("SELECT count(*) FROM exam_attempts").await, 0);
    }

    /// Another recorder marks the REQUESTED refund DONE and zeroes the balance after this
    /// recorder's snapshot: this one waits on the payment lock, its stale match is re-checked
    /// and dropped, and nothing is recorded twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn recording_after_concurrent_recording_adds_nothing() {
        let (db, pool) = setup().await;
        let c = course(&db, 10_000).await;
        let o = order(&db, UserId::new(), &c).await;
        let s = buy(&db, &o, "pk_record_lock").await;
        let requested = begun(&db, new_refund(s.payment_id, None, 3)).await;

        let mut tx = pool.begin().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE payments SET balance = 0, status = 'CANCELED' WHERE id = $1")
            .bind(s.payment_id.0)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE refunds SET status = 'DONE', transaction_key = 'tx_lock' WHERE id = $1",
        )
        .bind(requested.id.0)
        .execute(&mut *tx)
        .await
        .unwrap();

        let store = db.store.clone();
        let c = cancellation("pk_record_lock", 0, &[("tx_lock", 10_000)], 4);
        let record = tokio::spawn(async move { store.record_cancellation(c).await });
        blocked_by(&pool, pid, 1).await;
        tx.commit().await.unwrap();

        let rec = record.await.unwrap().unwrap();
        assert_eq!(rec.refunds_recorded, 0);
        assert_eq!(rec.payment.balance, won(0));
        let refunds = db.store.payment_refunds(s.payment_id).await.unwrap();
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].transaction_key.as_deref(), Some("tx_lock"));
    }

    /// A concurrent settle of the same payment commits after this settle's snapshot: this one
    /// waits on the order lock, sees nothing it can use, re-runs and returns the first result.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn settle_replay_after_concurrent_settle() {
        let (db, pool) = setup().await;
        let c = course(&db, 10_000).await;
        let o = order(&db, UserId::new(), &c).await;
        claim(&db, &o, "pk_lock_1", 1).await;

        // Hold the order row lock, as a concurrent settle does between its start and commit.
        let mut tx = pool.begin().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT 1 FROM orders WHERE order_id = $1 FOR UPDATE")
            .bind(o.order_id.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();

        let first_store = db.store.clone();
        let first_s = settlement(&o, "pk_lock_1", "confirm", 2);
        let first = tokio::spawn(async move { first_store.settle(first_s).await });
        blocked_by(&pool, pid, 1).await;
        let second_store = db.store.clone();
        let second_s = settlement(&o, "pk_lock_1", "webhook", 2);
        let second = tokio::spawn(async move { second_store.settle(second_s).await });
        // Both settles are now queued behind the lock (each snapshot predates the other's
        // commit); release them.
        blocked_by(&pool, pid, 2).await;
        tx.commit().await.unwrap();

        let a = first.await.unwrap().unwrap();
        let b = second.await.unwrap().unwrap();
        assert_eq!(u8::from(a.newly_settled) + u8::from(b.newly_settled), 1);
        assert_eq!(a.payment_id, b.payment_id);
        assert_eq!(a.enrollment_id, b.enrollment_id);
        assert_eq!(db.raw.count("SELECT count(*) FROM payments").await, 1);
    }
}

// --- SQLite only: how the file is opened ------------------------------------------------------

mod sqlite_open {
    use super::*;
    use store::{SqliteStore, Store};

    async fn pragma(store: &SqliteStore, sql: &'static str) -> String {
        let row = sqlx::query(sql).fetch_one(store.pool()).await.unwrap();
        use sqlx::Row;
        row.try_get::<String, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))
            .unwrap()
    }

    #[tokio::test]
    async fn path_url_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("by-path.sqlite3");
        let by_path = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        by_path.migrate().await.unwrap();
        by_path.ready().await.unwrap();
        assert!(path.exists());
        assert_eq!(pragma(&by_path, "PRAGMA journal_mode").await, "wal");
        assert_eq!(pragma(&by_path, "PRAGMA foreign_keys").await, "1");
        assert_eq!(pragma(&by_path, "PRAGMA busy_timeout").await, "10000");

        let url = format!("sqlite://{}", dir.path().join("by-url.sqlite3").display());
        let by_url = SqliteStore::open(&url).await.unwrap();
        by_url.migrate().await.unwrap();
        assert!(dir.path().join("by-url.sqlite3").exists());

        let memory = SqliteStore::open("sqlite::memory:").await.unwrap();
        memory.migrate().await.unwrap();
        memory.ready().await.unwrap();
        assert!(memory.list_courses().await.unwrap().is_empty());

        // Not migrated: not ready.
        let fresh = SqliteStore::open(dir.path().join("empty.sqlite3").to_str().unwrap())
            .await
            .unwrap();
        assert!(fresh.ready().await.is_err());
    }

    #[tokio::test]
    async fn unreachable_postgres_is_unavailable() {
        // Port 1 on loopback: nothing listens there. A short acquire timeout keeps this fast;
        // `PgStore::connect` behaves the same after its 5 s.
        let options: sqlx::postgres::PgConnectOptions =
            "postgres://postgres@127.0.0.1:1/none".parse().unwrap();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_millis(300))
            .connect_lazy_with(options);
        let store = store::PgStore::from_pool(pool);
        let err = store.get_order(&OrderId::generate()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let err = store.ready().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
