//! PostgreSQL next to Supabase: coursepay's own schema, locked down against Supabase's `anon`
//! and `authenticated` roles (created here as Supabase creates them), adoption of a database
//! whose tables earlier versions created in `public`, a DML-only runtime role, and the plain
//! SQL files of `coursepay migrate --print` with `user_id` referencing `auth.users`; a pooled
//! connection dropped by the server while idle is replaced before use.
//! SQLite has no schemas and no roles; its behaviour is covered by the conformance suite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{CourseId, Money, OrderId, PaymentKey, PaymentStatus, UserId};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, PgConnection, PgPool, Row};
use std::str::FromStr;
use store::{
    ClaimOutcome, ClaimRequest, EventContext, NewCourse, NewOrder, PgSettings, PgStore, Settlement,
    Store, testing,
};
use time::OffsetDateTime;

fn base_options() -> PgConnectOptions {
    PgConnectOptions::from_str(&testing::test_database_url()).unwrap()
}

async fn admin() -> PgConnection {
    PgConnection::connect_with(&base_options())
        .await
        .expect("PostgreSQL reachable at TEST_DATABASE_URL")
}

/// Supabase's API roles, created once per cluster (concurrent test runs may race to it).
async fn ensure_supabase_roles(conn: &mut PgConnection) {
    for role in ["anon", "authenticated"] {
        conn.execute(AssertSqlSafe(format!(
            "DO $$ BEGIN CREATE ROLE {role} NOLOGIN NOINHERIT;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )))
        .await
        .unwrap();
    }
}

/// A new, empty database (dropped by [`drop_database`]).
async fn fresh_database(prefix: &str) -> (String, PgConnectOptions) {
    let name = format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    admin()
        .await
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let opts = base_options().database(&name);
    (name, opts)
}

async fn drop_database(name: &str) {
    let _ = admin()
        .await
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await;
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn ctx(actor: &str) -> EventContext {
    EventContext::new(actor, Some("req-schema".to_owned()), now())
}

/// A course and a user who bought it (claim + settle), through the store.
async fn purchase(store: &dyn Store, user: UserId) -> OrderId {
    let course = store
        .create_course(NewCourse {
            id: CourseId::new(),
            title: "Schema course".into(),
            price: Money::new(5000).unwrap(),
            now: now(),
        })
        .await
        .unwrap();
    let order = store
        .create_order(NewOrder {
            order_id: OrderId::generate(),
            user_id: user,
            course_id: course.id,
            amount: course.price,
            order_name: course.title.clone(),
            now: now(),
            expires_at: now() + time::Duration::minutes(30),
            max_open_per_user: None,
            ctx: ctx("user"),
        })
        .await
        .unwrap();
    let key = PaymentKey::parse(&format!("tgen_{}", uuid::Uuid::new_v4().simple())).unwrap();
    let claimed = store
        .claim_order(ClaimRequest {
            order_id: order.order_id.clone(),
            user_id: user,
            amount: order.amount,
            payment_key: key.clone(),
            ctx: ctx("user"),
        })
        .await
        .unwrap();
    assert!(matches!(claimed, ClaimOutcome::Claimed(_)), "{claimed:?}");
    store
        .settle(Settlement {
            order_id: order.order_id.clone(),
            payment_key: key,
            amount: order.amount,
            status: PaymentStatus::Done,
            method: Some("카드".into()),
            approved_at: now(),
            secret: None,
            source: "confirm".into(),
            ctx: ctx("confirm"),
        })
        .await
        .unwrap();
    order.order_id
}

async fn tables_of(pool: &PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Run `sql` as `role` (SET LOCAL ROLE in a rolled-back transaction): Ok(rows affected or
/// returned) or the SQLSTATE of the refusal.
async fn as_role(pool: &PgPool, role: &str, sql: &str) -> Result<u64, String> {
    let mut tx = pool.begin().await.unwrap();
    tx.execute(AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
        .await
        .unwrap();
    let result = match sqlx::query(AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *tx)
        .await
    {
        Ok(rows) if sql.starts_with("SELECT count") => Ok(rows[0].get::<i64, _>(0) as u64),
        Ok(rows) => Ok(rows.len() as u64),
        Err(e) => Err(e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()))
            .unwrap_or_else(|| e.to_string())),
    };
    tx.rollback().await.unwrap();
    result
}

/// The four statements of the matrix against one table (the update rewrites its first column).
async fn statements(pool: &PgPool, schema: &str, table: &str) -> [(&'static str, String); 4] {
    let first: String = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass AND a.attnum = 1",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(pool)
    .await
    .unwrap();
    let t = format!("\"{schema}\".\"{table}\"");
    [
        ("select", format!("SELECT count(*) FROM {t}")),
        (
            "insert",
            format!("INSERT INTO {t} DEFAULT VALUES RETURNING 1"),
        ),
        (
            "update",
            format!("UPDATE {t} SET \"{first}\" = \"{first}\" RETURNING 1"),
        ),
        ("delete", format!("DELETE FROM {t} RETURNING 1")),
    ]
}

#[tokio::test]
async fn anon_and_authenticated_are_refused_every_statement_on_every_table() {
    let mut admin = admin().await;
    ensure_supabase_roles(&mut admin).await;
    let store = testing::postgres_store().await;
    let schema = store.schema().to_owned();
    let pool = store.pool().clone();
    purchase(&store, UserId::new()).await;

    let tables = tables_of(&pool, &schema).await;
    for expected in [
        "_sqlx_migrations",
        "courses",
        "enrollments",
        "exam_attempts",
        "idempotency_keys",
        "one_time_tokens",
        "orders",
        "payment_controls",
        "payment_events",
        "payments",
        "refunds",
    ] {
        assert!(
            tables.contains(&expected.to_owned()),
            "{expected} not in {schema}: {tables:?}"
        );
    }
    // Nothing of coursepay's in public; RLS on every table of the schema.
    let in_public: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relname = ANY($1)",
    )
    .bind(&tables)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(in_public, 0);
    store.verify_migrated().await.unwrap();

    // The matrix: 2 roles × every table × select/insert/update/delete, all refused (42501).
    let mut refused = 0;
    for role in ["anon", "authenticated"] {
        for table in &tables {
            for (op, sql) in statements(&pool, &schema, table).await {
                let r = as_role(&pool, role, &sql).await;
                assert_eq!(r, Err("42501".to_owned()), "{role} {op} on {table}");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 2 * tables.len() * 4);

    // Second line of defence: someone GRANTs the tables to `authenticated` by mistake. RLS
    // still hides every row and refuses every write...
    for grant in [
        "GRANT USAGE ON SCHEMA \"{s}\" TO authenticated",
        "GRANT ALL ON ALL TABLES IN SCHEMA \"{s}\" TO authenticated",
        "GRANT ALL ON ALL SEQUENCES IN SCHEMA \"{s}\" TO authenticated",
    ] {
        pool.execute(AssertSqlSafe(grant.replace("{s}", &schema)))
            .await
            .unwrap();
    }
    for table in &tables {
        let owner_sees: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{schema}\".\"{table}\""
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        for (op, sql) in statements(&pool, &schema, table).await {
            let r = as_role(&pool, "authenticated", &sql).await;
            match op {
                // No row is visible, so none is updated or deleted.
                "select" | "update" | "delete" => assert_eq!(r, Ok(0), "{op} on {table}"),
                // The policy's WITH CHECK refuses the new row before any column check.
                _ => assert_eq!(r, Err("42501".to_owned()), "{op} on {table}"),
            }
        }
        let still: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{schema}\".\"{table}\""
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(owner_sees, still, "{table} unchanged");
        if table == "courses" || table == "orders" || table == "payments" {
            assert!(owner_sees > 0, "{table} has rows the role could not see");
        }
    }
    // ...and the next `migrate` takes the grants back.
    store.migrate().await.unwrap();
    let r = as_role(
        &pool,
        "authenticated",
        &format!("SELECT count(*) FROM \"{schema}\".orders"),
    )
    .await;
    assert_eq!(r, Err("42501".to_owned()));
}

#[tokio::test]
async fn a_database_migrated_into_public_moves_into_the_schema_with_every_row() {
    let (name, opts) = fresh_database("cp_legacy").await;
    // The previous layout: migrations 1–4 applied with the default search_path (public).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let all = Migrator::new(std::path::Path::new(dir)).await.unwrap();
    let legacy =
        Migrator::with_migrations(all.iter().filter(|m| m.version <= 4).cloned().collect());
    let raw = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts.clone())
        .await
        .unwrap();
    legacy.run(&raw).await.unwrap();
    // Data written by the previous version, plus a table of the project's own in public.
    let old = PgStore::from_pool(raw.clone());
    let user = UserId::new();
    let order_id = purchase(&old, user).await;
    sqlx::raw_sql(
        "CREATE TABLE public.profiles (id uuid PRIMARY KEY);
         INSERT INTO public.profiles VALUES (gen_random_uuid())",
    )
    .execute(&raw)
    .await
    .unwrap();
    let counts = |schema: &'static str| {
        let raw = raw.clone();
        async move {
            let mut out = Vec::new();
            for t in [
                "courses",
                "orders",
                "payments",
                "enrollments",
                "payment_events",
                "payment_controls",
            ] {
                let n: i64 =
                    sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {schema}.{t}")))
                        .fetch_one(&raw)
                        .await
                        .unwrap();
                out.push((t, n));
            }
            out
        }
    };
    let before = counts("public").await;
    assert!(before.iter().all(|(_, n)| *n > 0), "{before:?}");
    let max_event: i64 = sqlx::query_scalar("SELECT max(id) FROM public.payment_events")
        .fetch_one(&raw)
        .await
        .unwrap();

    // This version: the default schema.
    let url = opts.to_url_lossy().to_string();
    let store = PgStore::connect_with_settings(&url, &PgSettings::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(counts("coursepay").await, before);
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM coursepay._sqlx_migrations ORDER BY version")
            .fetch_all(&raw)
            .await
            .unwrap();
    assert_eq!(
        versions[..4],
        [1, 2, 3, 4],
        "the history moved, nothing re-ran"
    );
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND relkind IN ('r', 'S', 'i') ORDER BY 1",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(
        leftovers,
        vec!["profiles", "profiles_pkey"],
        "only the project's own table stays"
    );
    let function_in: String = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.proname = 'payment_events_append_only'",
    )
    .fetch_one(&raw)
    .await
    .unwrap();
    assert_eq!(function_in, "coursepay");

    // The moved data is the store's data, and works as before.
    let order = store
        .get_order(&order_id)
        .await
        .unwrap()
        .expect("order moved");
    assert_eq!(order.user_id, user);
    assert_eq!(store.list_enrollments(user).await.unwrap().len(), 1);
    store.verify_migrated().await.unwrap();
    // The append-only trigger moved with its table; the event sequence continues.
    let err = sqlx::query("UPDATE coursepay.payment_events SET actor = 'x'")
        .execute(&raw)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    purchase(&store, UserId::new()).await;
    let new_min: i64 =
        sqlx::query_scalar("SELECT min(id) FROM coursepay.payment_events WHERE id > $1")
            .bind(max_event)
            .fetch_one(&raw)
            .await
            .unwrap();
    assert!(new_min > max_event);

    store.close().await;
    raw.close().await;
    drop_database(&name).await;
}

#[tokio::test]
async fn a_dml_only_role_runs_the_store_but_cannot_migrate() {
    let migrated = testing::postgres_store().await;
    let schema = migrated.schema().to_owned();
    let role = format!("cp_rt_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let mut admin = admin().await;
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE ON SCHEMA \"{schema}\" TO {role}"),
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{schema}\" TO {role}"
        ),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA \"{schema}\" TO {role}"),
    ] {
        admin.execute(AssertSqlSafe(sql)).await.unwrap();
    }
    let settings = PgSettings {
        schema: schema.clone(),
        max_connections: 2,
        statement_timeout: Some(std::time::Duration::from_secs(5)),
    };
    let runtime = PgStore::connect_with(base_options().username(&role), &settings)
        .await
        .unwrap();
    runtime.verify_migrated().await.unwrap();
    // The whole money path under RLS, as the runtime role.
    let user = UserId::new();
    let order_id = purchase(&runtime, user).await;
    assert_eq!(runtime.list_enrollments(user).await.unwrap().len(), 1);
    assert!(runtime.get_order(&order_id).await.unwrap().is_some());
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(runtime.pool())
        .await
        .unwrap();
    assert_eq!(timeout, "5s");
    // No DDL.
    let err = runtime
        .pool()
        .execute("CREATE TABLE sneaky (i int)")
        .await
        .unwrap_err();
    assert_eq!(err.as_database_error().unwrap().code().unwrap(), "42501");
    assert!(runtime.migrate().await.is_err());

    // A schema nobody migrated: verify_migrated says so.
    let (name, opts) = fresh_database("cp_unmigrated").await;
    let empty = PgStore::connect_with(opts, &PgSettings::default())
        .await
        .unwrap();
    let err = empty.verify_migrated().await.unwrap_err().to_string();
    assert!(
        err.contains("not applied") || err.contains("does not exist"),
        "{err}"
    );
    empty.close().await;
    drop_database(&name).await;

    runtime.close().await;
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        admin.execute(AssertSqlSafe(sql)).await.unwrap();
    }
}

#[tokio::test]
async fn printed_migrations_apply_as_plain_sql_and_reference_auth_users() {
    let (name, opts) = fresh_database("cp_print").await;
    let mut conn = PgConnection::connect_with(&opts).await.unwrap();
    ensure_supabase_roles(&mut conn).await;
    // A minimal Supabase auth schema.
    sqlx::raw_sql("CREATE SCHEMA auth; CREATE TABLE auth.users (id uuid PRIMARY KEY, email text)")
        .execute(&mut conn)
        .await
        .unwrap();
    let files = PgStore::print_migrations("coursepay").unwrap();
    assert!(files.len() >= 4);
    let mut names: Vec<_> = files.iter().map(|f| f.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "in order"
    );
    for f in &files {
        assert!(
            f.name
                .split('_')
                .next()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_digit())
        );
        // As Supabase's CLI applies a file: as is, in one session.
        sqlx::raw_sql(AssertSqlSafe(f.sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
    }
    // The session's search_path is back to normal for the project's next migration.
    let sp: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!sp.contains("coursepay"), "{sp}");

    let fks: Vec<String> = sqlx::query_scalar(
        "SELECT conrelid::regclass::text FROM pg_constraint
         WHERE contype = 'f' AND confrelid = 'auth.users'::regclass ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        fks,
        vec![
            "coursepay.enrollments",
            "coursepay.orders",
            "coursepay.payments"
        ]
    );

    // `coursepay migrate` and `serve` recognise the printed files as applied.
    let url = opts.to_url_lossy().to_string();
    let store = PgStore::connect_with_settings(&url, &PgSettings::default())
        .await
        .unwrap();
    store.verify_migrated().await.unwrap();
    store.migrate().await.unwrap();
    // A user_id unknown to auth.users is refused; a real user buys.
    let err = store
        .create_course(NewCourse {
            id: CourseId::new(),
            title: "c".into(),
            price: Money::new(1000).unwrap(),
            now: now(),
        })
        .await
        .map(|_| ());
    assert!(err.is_ok());
    let stranger = UserId::new();
    let course = store.list_courses().await.unwrap().remove(0);
    let refused = store
        .create_order(NewOrder {
            order_id: OrderId::generate(),
            user_id: stranger,
            course_id: course.id,
            amount: course.price,
            order_name: "c".into(),
            now: now(),
            expires_at: now() + time::Duration::minutes(30),
            max_open_per_user: None,
            ctx: ctx("user"),
        })
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("orders_user_id_auth_users_fkey"),
        "{refused}"
    );
    let user = UserId::new();
    sqlx::query("INSERT INTO auth.users (id) VALUES ($1)")
        .bind(user.0)
        .execute(&mut conn)
        .await
        .unwrap();
    purchase(&store, user).await;

    store.close().await;
    let _ = conn.close().await;
    drop_database(&name).await;
}

/// The backend process behind the connection the store's own statements run on next.
async fn store_backend(store: &PgStore) -> i32 {
    let mut lease = store.connections().acquire().await.unwrap();
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(lease.start())
        .await;
    lease.finished(&pid);
    pid.unwrap()
}

/// A store over a migrated schema whose statements all run on one connection.
async fn one_connection_store() -> PgStore {
    let migrated = testing::postgres_store().await;
    let settings = PgSettings {
        schema: migrated.schema().to_owned(),
        max_connections: 1,
        statement_timeout: None,
    };
    PgStore::connect_with(base_options(), &settings)
        .await
        .unwrap()
}

/// End a backend process, as a server restart or an operator would.
async fn terminate(pid: i32) {
    admin()
        .await
        .execute(AssertSqlSafe(format!("SELECT pg_terminate_backend({pid})")))
        .await
        .unwrap();
}

/// The store's connections are not pinged when used moments ago; one the server dropped while
/// it sat idle for longer is still found out and replaced before a statement runs on it.
#[tokio::test]
async fn a_connection_dropped_while_idle_is_replaced_before_use() {
    let store = one_connection_store().await;
    let dropped = store_backend(&store).await;
    assert_eq!(
        store_backend(&store).await,
        dropped,
        "one connection, reused"
    );
    terminate(dropped).await;
    tokio::time::sleep(store::postgres::RECHECK_IDLE_AFTER + std::time::Duration::from_millis(300))
        .await;
    store
        .ready()
        .await
        .expect("the dropped connection is replaced, not used");
    assert_ne!(store_backend(&store).await, dropped);
}

/// A connection is reused only between statements: one whose statement was abandoned (the
/// request's future dropped mid-statement) is closed, and one the server ended is not reused.
#[tokio::test]
async fn only_connections_between_statements_are_reused() {
    let store = one_connection_store().await;
    let first = store_backend(&store).await;

    // A server error (here: division by zero) leaves the connection usable and reused.
    let mut lease = store.connections().acquire().await.unwrap();
    let refused = sqlx::query("SELECT 1/0").execute(lease.start()).await;
    lease.finished(&refused);
    assert!(refused.is_err());
    drop(lease);
    assert_eq!(store.connections().idle_count(), 1);
    assert_eq!(store_backend(&store).await, first);

    // Abandoned mid-statement: not put back; the next statement gets a fresh session.
    let mut lease = store.connections().acquire().await.unwrap();
    let slow = sqlx::query("SELECT pg_sleep(5)").execute(lease.start());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), slow)
            .await
            .is_err()
    );
    drop(lease);
    assert_eq!(store.connections().idle_count(), 0);
    let second = store_backend(&store).await;
    assert_ne!(second, first);
    store.ready().await.unwrap();

    // Ended by the server while in use (an I/O error on the next statement): not reused.
    terminate(second).await;
    assert!(
        store.ready().await.is_err(),
        "the killed session fails its statement"
    );
    assert_eq!(store.connections().idle_count(), 0);
    store
        .ready()
        .await
        .expect("a new connection serves the next call");
    assert_ne!(store_backend(&store).await, second);
    store.close().await;
}
