-- Shared ACME challenges serve replicas, which need PostgreSQL; a SQLite
-- server answers from its own memory. This level only keeps the two
-- engines' migration numbers in step.
SELECT 1;
