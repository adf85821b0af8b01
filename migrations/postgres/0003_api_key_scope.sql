-- API key scopes (clawscale extension; Headscale keys have none): `whois`
-- may read identities, `admin` may do everything. Existing keys keep full
-- rights. Keep in step with migrations/sqlite/0003_api_key_scope.sql.
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';
