-- The recovery figures over a span of days read a merchant's invoices by
-- the time of their first failure and by the time of their recovery.
CREATE INDEX invoices_failed_at ON invoices (merchant_id, first_failed_at)
	INCLUDE (currency, amount_due, decline_code)
	WHERE first_failed_at IS NOT NULL;
CREATE INDEX invoices_recovered_at ON invoices (merchant_id, closed_at)
	INCLUDE (currency, paid_amount, decline_code, recovered_by)
	WHERE status = 'paid' AND recovered_by <> '';
