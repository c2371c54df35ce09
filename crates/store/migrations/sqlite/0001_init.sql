-- coursepay schema, SQLite. Same tables and constraint names as the PostgreSQL migration
-- (application code matches on the names), adapted to SQLite:
--   * uuid      → BLOB (16 bytes, sqlx's encoding of uuid::Uuid)
--   * timestamp → TEXT, RFC 3339 in UTC with exactly six fractional digits
--                 ('2026-01-02T03:04:05.123456Z'), written only by the store's one formatter,
--                 so text order is time order and `<`/`>` compare correctly
--   * jsonb     → TEXT holding JSON; boolean → INTEGER 0/1
-- Tables are STRICT so a value of the wrong type is refused instead of silently stored.

CREATE TABLE courses (
    id          BLOB    NOT NULL,
    title       TEXT    NOT NULL,
    price       INTEGER NOT NULL,
    currency    TEXT    NOT NULL DEFAULT 'KRW',
    status      TEXT    NOT NULL DEFAULT 'PUBLISHED',
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    CONSTRAINT courses_pkey PRIMARY KEY (id),
    CONSTRAINT courses_price_check CHECK (price BETWEEN 100 AND 100000000),
    CONSTRAINT courses_currency_check CHECK (currency = 'KRW'),
    CONSTRAINT courses_status_check CHECK (status IN ('PUBLISHED', 'DRAFT'))
) STRICT;

CREATE TABLE enrollments (
    id          BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    course_id   BLOB NOT NULL,
    status      TEXT NOT NULL,
    source      TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT enrollments_pkey PRIMARY KEY (id),
    CONSTRAINT enrollments_course_id_fkey FOREIGN KEY (course_id) REFERENCES courses (id),
    CONSTRAINT enrollments_status_check CHECK (status IN ('ENROLLED', 'REFUNDED')),
    CONSTRAINT enrollments_source_check CHECK (source IN ('payment', 'admin_grant')),
    CONSTRAINT enrollments_user_course_key UNIQUE (user_id, course_id)
) STRICT;

CREATE TABLE orders (
    order_id      TEXT    NOT NULL,
    user_id       BLOB    NOT NULL,
    course_id     BLOB    NOT NULL,
    amount        INTEGER NOT NULL,
    order_name    TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    payment_key   TEXT,
    payment_id    BLOB,
    enrollment_id BLOB,
    approved_at   TEXT,
    failure_code  TEXT,
    created_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    CONSTRAINT orders_pkey PRIMARY KEY (order_id),
    CONSTRAINT orders_order_id_check CHECK (length(order_id) BETWEEN 6 AND 64),
    CONSTRAINT orders_course_id_fkey FOREIGN KEY (course_id) REFERENCES courses (id),
    CONSTRAINT orders_enrollment_id_fkey FOREIGN KEY (enrollment_id)
        REFERENCES enrollments (id) ON UPDATE CASCADE,
    CONSTRAINT orders_amount_check CHECK (amount > 0),
    CONSTRAINT orders_status_check
        CHECK (status IN ('PENDING', 'CONFIRMING', 'PAID', 'FAILED', 'EXPIRED', 'REFUNDED'))
) STRICT;

CREATE UNIQUE INDEX orders_one_active_per_course
    ON orders (user_id, course_id)
    WHERE status IN ('CONFIRMING', 'PAID');

CREATE INDEX orders_status_updated_at_idx ON orders (status, updated_at);

CREATE TABLE payments (
    id             BLOB    NOT NULL,
    provider       TEXT    NOT NULL,
    provider_tx_id TEXT    NOT NULL,
    order_id       TEXT    NOT NULL,
    user_id        BLOB    NOT NULL,
    course_id      BLOB    NOT NULL,
    enrollment_id  BLOB,
    amount         INTEGER NOT NULL,
    balance        INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    method         TEXT,
    secret         TEXT,
    approved_at    TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    CONSTRAINT payments_pkey PRIMARY KEY (id),
    CONSTRAINT payments_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (order_id),
    CONSTRAINT payments_order_id_key UNIQUE (order_id),
    CONSTRAINT payments_course_id_fkey FOREIGN KEY (course_id) REFERENCES courses (id),
    CONSTRAINT payments_enrollment_id_fkey FOREIGN KEY (enrollment_id)
        REFERENCES enrollments (id) ON UPDATE CASCADE,
    CONSTRAINT payments_amount_check CHECK (amount > 0),
    CONSTRAINT payments_balance_check CHECK (balance >= 0 AND balance <= amount),
    CONSTRAINT payments_status_check CHECK (status IN ('READY', 'IN_PROGRESS',
        'WAITING_FOR_DEPOSIT', 'DONE', 'CANCELED', 'PARTIAL_CANCELED', 'ABORTED', 'EXPIRED')),
    CONSTRAINT payments_provider_tx_key UNIQUE (provider, provider_tx_id)
) STRICT;

CREATE TABLE refunds (
    id              BLOB    NOT NULL,
    payment_id      BLOB    NOT NULL,
    amount          INTEGER NOT NULL,
    reason          TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    transaction_key TEXT,
    idempotency_key TEXT    NOT NULL,
    requested_by    TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    CONSTRAINT refunds_pkey PRIMARY KEY (id),
    CONSTRAINT refunds_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES payments (id),
    CONSTRAINT refunds_amount_check CHECK (amount > 0),
    CONSTRAINT refunds_status_check CHECK (status IN ('REQUESTED', 'DONE', 'FAILED')),
    CONSTRAINT refunds_transaction_key_key UNIQUE (transaction_key),
    CONSTRAINT refunds_idempotency_key_key UNIQUE (idempotency_key)
) STRICT;

CREATE INDEX refunds_payment_id_idx ON refunds (payment_id);

CREATE TABLE exam_attempts (
    id            BLOB    NOT NULL,
    enrollment_id BLOB    NOT NULL,
    score         INTEGER,
    started_at    TEXT    NOT NULL,
    submitted_at  TEXT,
    CONSTRAINT exam_attempts_pkey PRIMARY KEY (id),
    CONSTRAINT exam_attempts_enrollment_id_fkey FOREIGN KEY (enrollment_id)
        REFERENCES enrollments (id) ON UPDATE CASCADE,
    CONSTRAINT exam_attempts_score_check CHECK (score BETWEEN 0 AND 100)
) STRICT;

CREATE INDEX exam_attempts_enrollment_id_idx ON exam_attempts (enrollment_id);

CREATE TABLE payment_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    TEXT,
    payment_id  BLOB,
    kind        TEXT    NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    actor       TEXT    NOT NULL,
    request_id  TEXT,
    detail      TEXT    NOT NULL DEFAULT '{}',
    at          TEXT    NOT NULL
) STRICT;

CREATE INDEX payment_events_order_id_idx ON payment_events (order_id, id);

-- Append-only. The message starts with the constraint name the store reports.
CREATE TRIGGER payment_events_append_only_update
    BEFORE UPDATE ON payment_events
BEGIN
    SELECT RAISE(ABORT, 'payment_events_append_only: payment_events is append-only (UPDATE refused)');
END;

CREATE TRIGGER payment_events_append_only_delete
    BEFORE DELETE ON payment_events
BEGIN
    SELECT RAISE(ABORT, 'payment_events_append_only: payment_events is append-only (DELETE refused)');
END;

CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
) STRICT;

CREATE TABLE one_time_tokens (
    kind       TEXT NOT NULL,
    token      TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    CONSTRAINT one_time_tokens_pkey PRIMARY KEY (kind, token)
) STRICT;

CREATE TABLE payment_controls (
    id         INTEGER NOT NULL,
    paused     INTEGER NOT NULL DEFAULT 0,
    reason     TEXT,
    updated_at TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    CONSTRAINT payment_controls_pkey PRIMARY KEY (id),
    CONSTRAINT payment_controls_single_row CHECK (id = 1),
    CONSTRAINT payment_controls_paused_check CHECK (paused IN (0, 1))
) STRICT;

INSERT INTO payment_controls (id, paused, reason, updated_at, updated_by)
VALUES (1, 0, NULL, strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.000000Z', 'migration');
