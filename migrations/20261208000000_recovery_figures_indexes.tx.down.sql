DROP INDEX invoices_recovered_at;
DROP INDEX invoices_failed_at;
