-- Ended orders whose virtual account Toss may still hold open (see the PostgreSQL migration
-- beside this one): when the reconciler looks at such an order next, NULL once Toss showed
-- nothing left open.
ALTER TABLE orders ADD COLUMN account_check_at TEXT;

CREATE INDEX orders_account_check_idx ON orders (account_check_at)
WHERE account_check_at IS NOT NULL;

-- Orders that ended before this migration are looked at once.
UPDATE orders SET account_check_at = updated_at
WHERE status IN ('FAILED', 'EXPIRED') AND deposit_secret IS NOT NULL AND payment_id IS NULL;
