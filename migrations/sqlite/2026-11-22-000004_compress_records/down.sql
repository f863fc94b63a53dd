-- PostgreSQL only (lz4 for batch records); SQLite has no equivalent.
SELECT 1;
