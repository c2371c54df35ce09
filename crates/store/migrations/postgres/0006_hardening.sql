-- Abuse caps and retention.
--
-- How many times the reconciler looked an order up at Toss after the order's own expiry. A
-- PENDING order past its expiry can no longer be claimed, so no confirm can charge it; after a
-- few lookups (in case Toss still reports something) it is expired without asking again.
ALTER TABLE orders ADD COLUMN reconcile_lookups_expired integer NOT NULL DEFAULT 0;

-- The per-user cap on unpaid orders counts these at every checkout.
CREATE INDEX orders_pending_user_idx ON orders (user_id, expires_at) WHERE status = 'PENDING';

-- The retention purge deletes by expiry in small batches.
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
CREATE INDEX one_time_tokens_expires_at_idx ON one_time_tokens (expires_at);
