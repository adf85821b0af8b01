-- A shared audit trail serves replicas, which need PostgreSQL; a SQLite
-- server's trail is its audit file. This level only keeps the two engines'
-- migration numbers in step.
SELECT 1;
