-- The reconciler's lease per order (see the PostgreSQL migration beside this one).
ALTER TABLE orders ADD COLUMN reconcile_lease_until TEXT;
ALTER TABLE orders ADD COLUMN reconcile_lease_owner TEXT;

CREATE INDEX orders_open_created_at_idx ON orders (created_at)
    WHERE status IN ('PENDING', 'CONFIRMING');
