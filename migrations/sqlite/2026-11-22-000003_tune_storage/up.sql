-- PostgreSQL storage tuning only (fillfactor, TOAST); SQLite has no equivalent.
SELECT 1;
