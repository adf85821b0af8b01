-- Keep in step with the other engine's 0009_imported_key_hashes.sql.
-- Keys imported from Headscale (`clawscale import headscale`) keep the hash
-- Headscale stored, so they go on working: `bcrypt` of the secret part for
-- Headscale's API keys and its pre-auth keys from 0.28 on. Keys clawscale
-- issues are `sha256` (the default, so every existing key keeps its kind).
ALTER TABLE pre_auth_keys ADD COLUMN hash_kind TEXT NOT NULL DEFAULT 'sha256';
ALTER TABLE api_keys ADD COLUMN hash_kind TEXT NOT NULL DEFAULT 'sha256';
