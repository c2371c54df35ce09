-- The virtual-account secret from a WAITING_FOR_DEPOSIT confirm answer: a DEPOSIT_CALLBACK
-- webhook is only believed when it carries the same value.
ALTER TABLE orders ADD COLUMN deposit_secret TEXT;
