-- Ended orders whose virtual account Toss may still hold open.
--
-- An order that ends (FAILED/EXPIRED) after its virtual account was issued (a deposit secret)
-- and before any deposit was recorded is closed at Toss by the reconciler too, not only by the
-- webhook that reports it: if that webhook is lost, the buyer could still deposit for an order
-- that enrolls nobody. account_check_at is when the reconciler looks at such an order next;
-- NULL once Toss showed nothing left open (closed, deposited and recorded, or no account).
ALTER TABLE orders ADD COLUMN account_check_at timestamptz;

CREATE INDEX orders_account_check_idx ON orders (account_check_at)
WHERE account_check_at IS NOT NULL;

-- Orders that ended before this migration are looked at once.
UPDATE orders SET account_check_at = updated_at
WHERE status IN ('FAILED', 'EXPIRED') AND deposit_secret IS NOT NULL AND payment_id IS NULL;
