-- coursepay schema, PostgreSQL. The SQLite migration beside this one has the same tables and
-- the same constraint names: application code matches on those names (StoreError::Constraint),
-- so a name changes in both files or in neither.

CREATE TABLE courses (
    id          uuid        NOT NULL,
    title       text        NOT NULL,
    price       bigint      NOT NULL,
    currency    text        NOT NULL DEFAULT 'KRW',
    status      text        NOT NULL DEFAULT 'PUBLISHED',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT courses_pkey PRIMARY KEY (id),
    CONSTRAINT courses_price_check CHECK (price BETWEEN 100 AND 100000000),
    CONSTRAINT courses_currency_check CHECK (currency = 'KRW'),
    CONSTRAINT courses_status_check CHECK (status IN ('PUBLISHED', 'DRAFT'))
);

CREATE TABLE enrollments (
    id          uuid        NOT NULL,
    user_id     uuid        NOT NULL,
    course_id   uuid        NOT NULL,
    status      text        NOT NULL,
    -- 'payment' (settled from a payment) or 'admin_grant' (given by an operator, no money).
    source      text        NOT NULL,
    enrolled_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT enrollments_pkey PRIMARY KEY (id),
    CONSTRAINT enrollments_course_id_fkey FOREIGN KEY (course_id) REFERENCES courses (id),
    CONSTRAINT enrollments_status_check CHECK (status IN ('ENROLLED', 'REFUNDED')),
    CONSTRAINT enrollments_source_check CHECK (source IN ('payment', 'admin_grant')),
    -- Seed §1: one enrollment per user and course, whatever path created it.
    CONSTRAINT enrollments_user_course_key UNIQUE (user_id, course_id)
);

CREATE TABLE orders (
    order_id      text        NOT NULL,
    user_id       uuid        NOT NULL,
    course_id     uuid        NOT NULL,
    amount        bigint      NOT NULL,
    order_name    text        NOT NULL,
    status        text        NOT NULL,
    -- Toss's paymentKey this order is being / was confirmed with (set by the claim).
    payment_key   text,
    -- No FK: payments references orders, and the settle statement writes both at once.
    payment_id    uuid,
    enrollment_id uuid,
    approved_at   timestamptz,
    failure_code  text,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT orders_pkey PRIMARY KEY (order_id),
    CONSTRAINT orders_order_id_check CHECK (length(order_id) BETWEEN 6 AND 64),
    CONSTRAINT orders_course_id_fkey FOREIGN KEY (course_id) REFERENCES courses (id),
    CONSTRAINT orders_enrollment_id_fkey FOREIGN KEY (enrollment_id)
        REFERENCES enrollments (id) ON UPDATE CASCADE,
    CONSTRAINT orders_amount_check CHECK (amount > 0),
    CONSTRAINT orders_status_check
        CHECK (status IN ('PENDING', 'CONFIRMING', 'PAID', 'FAILED', 'EXPIRED', 'REFUNDED'))
);

-- The database's own guard against charging a user twice for one course: at most one order per
-- user and course is being charged (CONFIRMING) or charged (PAID). The claim step checks this
-- too; the index makes a concurrent second claim fail instead of reaching the provider.
CREATE UNIQUE INDEX orders_one_active_per_course
    ON orders (user_id, course_id)
    WHERE status IN ('CONFIRMING', 'PAID');

-- The reconciler's backlog: open orders by last touch.
CREATE INDEX orders_status_updated_at_idx ON orders (status, updated_at);

CREATE TABLE payments (
    id             uuid        NOT NULL,
    provider       text        NOT NULL,
    -- Toss's paymentKey.
    provider_tx_id text        NOT NULL,
    order_id       text        NOT NULL,
    user_id        uuid        NOT NULL,
    course_id      uuid        NOT NULL,
    enrollment_id  uuid,
    amount         bigint      NOT NULL,
    -- What can still be refunded (Toss's balanceAmount).
    balance        bigint      NOT NULL,
    status         text        NOT NULL,
    method         text,
    -- Virtual-account deposit secret, compared on DEPOSIT_CALLBACK.
    secret         text,
    approved_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    CONSTRAINT payments_pkey PRIMARY KEY (id),
    CONSTRAINT payments_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (order_id),
    CONSTRAINT payments_order_id_key UNIQUE (order_id),
    CONSTRAINT payments_course_id_fkey FOREIGN KEY (course_id) REFERENCES courses (id),
    -- Seed §1 (recommended): an enrollment id change follows into its payments.
    CONSTRAINT payments_enrollment_id_fkey FOREIGN KEY (enrollment_id)
        REFERENCES enrollments (id) ON UPDATE CASCADE,
    CONSTRAINT payments_amount_check CHECK (amount > 0),
    CONSTRAINT payments_balance_check CHECK (balance >= 0 AND balance <= amount),
    CONSTRAINT payments_status_check CHECK (status IN ('READY', 'IN_PROGRESS',
        'WAITING_FOR_DEPOSIT', 'DONE', 'CANCELED', 'PARTIAL_CANCELED', 'ABORTED', 'EXPIRED')),
    -- Seed §1: one row per provider payment, however many paths report it.
    CONSTRAINT payments_provider_tx_key UNIQUE (provider, provider_tx_id)
);

CREATE TABLE refunds (
    id              uuid        NOT NULL,
    payment_id      uuid        NOT NULL,
    amount          bigint      NOT NULL,
    reason          text        NOT NULL,
    status          text        NOT NULL,
    -- Toss's cancel transactionKey, once Toss answered.
    transaction_key text,
    -- The Idempotency-Key sent with the cancel request.
    idempotency_key text        NOT NULL,
    requested_by    text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT refunds_pkey PRIMARY KEY (id),
    CONSTRAINT refunds_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES payments (id),
    CONSTRAINT refunds_amount_check CHECK (amount > 0),
    CONSTRAINT refunds_status_check CHECK (status IN ('REQUESTED', 'DONE', 'FAILED')),
    CONSTRAINT refunds_transaction_key_key UNIQUE (transaction_key),
    CONSTRAINT refunds_idempotency_key_key UNIQUE (idempotency_key)
);

CREATE INDEX refunds_payment_id_idx ON refunds (payment_id);

CREATE TABLE exam_attempts (
    id            uuid        NOT NULL,
    -- No cascade: an enrollment that has attempts cannot be deleted (seed §1).
    enrollment_id uuid        NOT NULL,
    score         integer,
    started_at    timestamptz NOT NULL,
    submitted_at  timestamptz,
    CONSTRAINT exam_attempts_pkey PRIMARY KEY (id),
    CONSTRAINT exam_attempts_enrollment_id_fkey FOREIGN KEY (enrollment_id)
        REFERENCES enrollments (id) ON UPDATE CASCADE,
    CONSTRAINT exam_attempts_score_check CHECK (score BETWEEN 0 AND 100)
);

CREATE INDEX exam_attempts_enrollment_id_idx ON exam_attempts (enrollment_id);

-- Every state change of an order or payment: who, what, when, request id. Append-only; no
-- foreign keys, so the log can never block (or be blocked by) the rows it describes.
CREATE TABLE payment_events (
    id          bigserial   NOT NULL,
    order_id    text,
    payment_id  uuid,
    kind        text        NOT NULL,
    from_status text,
    to_status   text,
    actor       text        NOT NULL,
    request_id  text,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL,
    CONSTRAINT payment_events_pkey PRIMARY KEY (id)
);

CREATE INDEX payment_events_order_id_idx ON payment_events (order_id, id);

CREATE FUNCTION payment_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payment_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation', CONSTRAINT = 'payment_events_append_only';
END
$$;

CREATE TRIGGER payment_events_append_only
    BEFORE UPDATE OR DELETE ON payment_events
    FOR EACH ROW EXECUTE FUNCTION payment_events_append_only();

CREATE TRIGGER payment_events_no_truncate
    BEFORE TRUNCATE ON payment_events
    FOR EACH STATEMENT EXECUTE FUNCTION payment_events_append_only();

-- Client Idempotency-Keys with the fingerprint of the request that first used them. Rows past
-- expires_at are ignored and overwritten.
CREATE TABLE idempotency_keys (
    scope       text        NOT NULL,
    key         text        NOT NULL,
    fingerprint text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
);

-- Accepted webhook signatures, Toss transmission ids: seen once within their window.
CREATE TABLE one_time_tokens (
    kind       text        NOT NULL,
    token      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT one_time_tokens_pkey PRIMARY KEY (kind, token)
);

-- The payments pause switch (seed §6): exactly one row.
CREATE TABLE payment_controls (
    id         integer     NOT NULL,
    paused     boolean     NOT NULL DEFAULT false,
    reason     text,
    updated_at timestamptz NOT NULL,
    updated_by text        NOT NULL,
    CONSTRAINT payment_controls_pkey PRIMARY KEY (id),
    CONSTRAINT payment_controls_single_row CHECK (id = 1)
);

INSERT INTO payment_controls (id, paused, reason, updated_at, updated_by)
VALUES (1, false, NULL, now(), 'migration');
