-- When a failure counter last changed: counters untouched for long are pruned.
ALTER TABLE login_failures ADD COLUMN updated_on TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
CREATE INDEX login_failures_updated_on ON login_failures (updated_on);
