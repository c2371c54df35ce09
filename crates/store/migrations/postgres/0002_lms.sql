-- LMS side: refunds and exam attempts (issue #6). Same names in the SQLite file beside this one.

-- At most one refund per payment may be waiting for Toss's answer. Two refund requests for one
-- payment at once can then never both pass the over-refund check: the second one's INSERT hits
-- this index even when its snapshot could not see the first (PostgreSQL READ COMMITTED), and a
-- refund whose outcome is unknown blocks further refunds until it is settled.
CREATE UNIQUE INDEX refunds_one_requested_per_payment
    ON refunds (payment_id)
    WHERE status = 'REQUESTED';

-- The SLA check's backlog: refunds still REQUESTED, oldest first.
CREATE INDEX refunds_requested_created_at_idx
    ON refunds (created_at)
    WHERE status = 'REQUESTED';

-- Attempts started for this enrollment, kept in the enrollment row so the per-course limit is
-- enforced by one UPDATE … WHERE exam_attempts_started < limit: PostgreSQL re-checks that
-- condition on the newest row version after waiting for a concurrent start, which a count(*)
-- over exam_attempts inside the same statement would not see.
ALTER TABLE enrollments
    ADD COLUMN exam_attempts_started integer NOT NULL DEFAULT 0
        CONSTRAINT enrollments_exam_attempts_started_check CHECK (exam_attempts_started >= 0);
