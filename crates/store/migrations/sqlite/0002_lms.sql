-- LMS side: refunds and exam attempts (issue #6). Same names as the PostgreSQL file beside this
-- one.

-- At most one refund per payment may be waiting for Toss's answer (see the PostgreSQL file).
CREATE UNIQUE INDEX refunds_one_requested_per_payment
    ON refunds (payment_id)
    WHERE status = 'REQUESTED';

CREATE INDEX refunds_requested_created_at_idx
    ON refunds (created_at)
    WHERE status = 'REQUESTED';

-- Attempts started for this enrollment (the per-course attempt limit).
ALTER TABLE enrollments
    ADD COLUMN exam_attempts_started INTEGER NOT NULL DEFAULT 0
        CONSTRAINT enrollments_exam_attempts_started_check CHECK (exam_attempts_started >= 0);
