-- OpenID Connect users: a user who logged in through OIDC is identified by
-- (issuer, subject), never by e-mail or name, so a later login with a
-- changed e-mail updates the same user and another subject cannot take it
-- over. `oidc_groups` is the IdP's groups claim at the last login (JSON
-- list), for `oidc:NAME` group members in the policy. Numbered 0008 to
-- leave 0005 and 0007 to the other login work. Keep in step with
-- migrations/postgres/0008_oidc_users.sql.
ALTER TABLE users ADD COLUMN oidc_issuer TEXT NULL;
ALTER TABLE users ADD COLUMN oidc_subject TEXT NULL;
ALTER TABLE users ADD COLUMN profile_pic_url TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN oidc_groups TEXT NOT NULL DEFAULT '[]';
CREATE UNIQUE INDEX users_oidc_identity ON users (oidc_issuer, oidc_subject);
