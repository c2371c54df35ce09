-- The reconciler's lease per order: several instances may run the reconciler at once, and each
-- open order is worked on by at most one of them at a time (lease_open_orders). The lease is
-- not a state change: it never touches updated_at nor the event log.
ALTER TABLE orders ADD COLUMN reconcile_lease_until timestamptz;
ALTER TABLE orders ADD COLUMN reconcile_lease_owner text;

-- The reconciler's backlog (count, oldest) without scanning closed orders.
CREATE INDEX orders_open_created_at_idx ON orders (created_at)
    WHERE status IN ('PENDING', 'CONFIRMING');
