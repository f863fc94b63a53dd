DROP INDEX login_failures_updated_on;
ALTER TABLE login_failures DROP COLUMN updated_on;
