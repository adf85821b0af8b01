-- Replicas need PostgreSQL (docs/replicas.md): a SQLite database serves one
-- process, which takes a lock file to keep it so. This level only keeps the
-- two engines' migration numbers in step.
SELECT 1;
