-- Shared pending requests serve replicas, which need PostgreSQL; a SQLite
-- server keeps them in its own memory. This level only keeps the two
-- engines' migration numbers in step.
SELECT 1;
