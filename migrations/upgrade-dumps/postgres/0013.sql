-- clawscale postgres database at migration 0013, with the rows of src/db/upgrade_fixture.rs.
-- Written by pg_dump --column-inserts through db::upgrade_tests::write_upgrade_dumps; do not edit.
--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: clawscale_log_change(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.clawscale_log_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    change_id BIGINT;
    row_id    BIGINT;
BEGIN
    -- Key 0x636c61770001 ("claw", 1): the change-log order lock.
    PERFORM pg_advisory_xact_lock(109317142806529);
    -- TG_ARGV[1]: the column naming the entity ("id" if not given; 0 if
    -- the row has no such column).
    IF TG_OP = 'DELETE' THEN
        row_id := COALESCE((to_jsonb(OLD) ->> COALESCE(TG_ARGV[1], 'id'))::BIGINT, 0);
    ELSE
        row_id := COALESCE((to_jsonb(NEW) ->> COALESCE(TG_ARGV[1], 'id'))::BIGINT, 0);
    END IF;
    INSERT INTO change_log (entity, entity_id) VALUES (TG_ARGV[0], row_id)
        RETURNING id INTO change_id;
    PERFORM pg_notify('clawscale_changes', change_id::text);
    RETURN NULL;
END
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: _sqlx_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public._sqlx_migrations (
    version bigint NOT NULL,
    description text NOT NULL,
    installed_on timestamp with time zone DEFAULT now() NOT NULL,
    success boolean NOT NULL,
    checksum bytea NOT NULL,
    execution_time bigint NOT NULL
);


--
-- Name: acme_challenges; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.acme_challenges (
    owner text NOT NULL,
    value text NOT NULL,
    expires_at timestamp with time zone NOT NULL
);


--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_keys (
    id bigint NOT NULL,
    prefix text NOT NULL,
    hash bytea NOT NULL,
    expiration timestamp with time zone,
    last_seen timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    scope text DEFAULT 'admin'::text NOT NULL,
    hash_kind text DEFAULT 'sha256'::text NOT NULL
);


--
-- Name: api_keys_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.api_keys_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: api_keys_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.api_keys_id_seq OWNED BY public.api_keys.id;


--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    "time" timestamp with time zone NOT NULL,
    actor text NOT NULL,
    object text,
    entry text NOT NULL
);


--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.audit_log_id_seq OWNED BY public.audit_log.id;


--
-- Name: auth_requests; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_requests (
    id_hash text NOT NULL,
    registration text,
    expires_at timestamp with time zone NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    node_id bigint,
    user_id bigint,
    reason text,
    subject text,
    CONSTRAINT auth_requests_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'taken'::text, 'approved'::text, 'vouched'::text, 'rejected'::text])))
);


--
-- Name: change_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.change_log (
    id bigint NOT NULL,
    entity text NOT NULL,
    entity_id bigint NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: change_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.change_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: change_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.change_log_id_seq OWNED BY public.change_log.id;


--
-- Name: dns_settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.dns_settings (
    id integer NOT NULL,
    nameservers text,
    search_paths text,
    magic_dns boolean,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT dns_settings_id_check CHECK ((id = 1))
);


--
-- Name: nodes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.nodes (
    id bigint NOT NULL,
    machine_key text NOT NULL,
    node_key text NOT NULL,
    disco_key text DEFAULT ''::text NOT NULL,
    hostname text NOT NULL,
    given_name text NOT NULL,
    user_id bigint NOT NULL,
    tags text DEFAULT '[]'::text NOT NULL,
    ipv4 text,
    ipv6 text,
    endpoints text DEFAULT '[]'::text NOT NULL,
    home_derp integer DEFAULT 0 NOT NULL,
    hostinfo text DEFAULT '{}'::text NOT NULL,
    expiry timestamp with time zone,
    ephemeral boolean DEFAULT false NOT NULL,
    auth_key_id bigint,
    cap_version integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone NOT NULL,
    last_seen timestamp with time zone,
    approved_routes text DEFAULT '[]'::text NOT NULL,
    authorized boolean DEFAULT true NOT NULL
);


--
-- Name: nodes_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.nodes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: nodes_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.nodes_id_seq OWNED BY public.nodes.id;


--
-- Name: oauth_clients; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.oauth_clients (
    id bigint NOT NULL,
    client_id text NOT NULL,
    hash bytea NOT NULL,
    scopes text DEFAULT '[]'::text NOT NULL,
    tags text DEFAULT '[]'::text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: oauth_clients_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.oauth_clients_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: oauth_clients_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.oauth_clients_id_seq OWNED BY public.oauth_clients.id;


--
-- Name: oidc_flows; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.oidc_flows (
    state_hash text NOT NULL,
    sealed bytea NOT NULL,
    expires_at timestamp with time zone NOT NULL
);


--
-- Name: policies; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.policies (
    id bigint NOT NULL,
    data text NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: policies_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.policies_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: policies_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.policies_id_seq OWNED BY public.policies.id;


--
-- Name: pre_auth_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.pre_auth_keys (
    id bigint NOT NULL,
    prefix text NOT NULL,
    hash bytea NOT NULL,
    user_id bigint NOT NULL,
    reusable boolean NOT NULL,
    ephemeral boolean NOT NULL,
    used boolean DEFAULT false NOT NULL,
    tags text DEFAULT '[]'::text NOT NULL,
    expiration timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    preauthorized boolean DEFAULT false NOT NULL,
    hash_kind text DEFAULT 'sha256'::text NOT NULL
);


--
-- Name: pre_auth_keys_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.pre_auth_keys_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: pre_auth_keys_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.pre_auth_keys_id_seq OWNED BY public.pre_auth_keys.id;


--
-- Name: presence; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.presence (
    node_id bigint NOT NULL,
    replica text NOT NULL,
    since timestamp with time zone NOT NULL
);


--
-- Name: replicas; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.replicas (
    name text NOT NULL,
    derp_region text,
    started_at timestamp with time zone NOT NULL,
    heartbeat_at timestamp with time zone NOT NULL
);


--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id bigint NOT NULL,
    name text NOT NULL,
    display_name text DEFAULT ''::text NOT NULL,
    email text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    oidc_issuer text,
    oidc_subject text,
    profile_pic_url text DEFAULT ''::text NOT NULL,
    oidc_groups text DEFAULT '[]'::text NOT NULL
);


--
-- Name: users_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.users_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: users_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.users_id_seq OWNED BY public.users.id;


--
-- Name: write_probe; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.write_probe (
    id integer NOT NULL,
    checked_at timestamp with time zone NOT NULL,
    CONSTRAINT write_probe_id_check CHECK ((id = 1))
);


--
-- Name: api_keys id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys ALTER COLUMN id SET DEFAULT nextval('public.api_keys_id_seq'::regclass);


--
-- Name: audit_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log ALTER COLUMN id SET DEFAULT nextval('public.audit_log_id_seq'::regclass);


--
-- Name: change_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.change_log ALTER COLUMN id SET DEFAULT nextval('public.change_log_id_seq'::regclass);


--
-- Name: nodes id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes ALTER COLUMN id SET DEFAULT nextval('public.nodes_id_seq'::regclass);


--
-- Name: oauth_clients id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.oauth_clients ALTER COLUMN id SET DEFAULT nextval('public.oauth_clients_id_seq'::regclass);


--
-- Name: policies id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policies ALTER COLUMN id SET DEFAULT nextval('public.policies_id_seq'::regclass);


--
-- Name: pre_auth_keys id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pre_auth_keys ALTER COLUMN id SET DEFAULT nextval('public.pre_auth_keys_id_seq'::regclass);


--
-- Name: users id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users ALTER COLUMN id SET DEFAULT nextval('public.users_id_seq'::regclass);


--
-- Data for Name: _sqlx_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (1, 'initial', '2025-05-01 00:00:00+00', true, '\xbfe08f0494e652499acc916d595b04ffa3386f5d6add75297c93a5e8019c8a7637273edb38751ec184a3b1b5ace6955c', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (2, 'policy routes', '2025-05-01 00:00:00+00', true, '\x3e5f666df26bbc3d53ec487ac9f5f47c7b52aa90d36a9c80ad1d670273c194c32ed39a3cac35a0202500f4bad74f1779', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (3, 'api key scope', '2025-05-01 00:00:00+00', true, '\x5e69a35dbeeb17c14d5ec90c55cfd72b98f00dce6711dddc70dced51b33390c15ee1b9ada488516929cc482199f61430', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (4, 'write probe', '2025-05-01 00:00:00+00', true, '\x2602192253b16c72e0657aed58807ed40ef74e32ec8f145aabae5bacd099997df8310556500057513952c73ebecd7c57', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (6, 'api v2', '2025-05-01 00:00:00+00', true, '\x4bf1d430e0f9ae1d6d3586ffb7ec53a64459c2df985780832b1dee8d23c31c151aff147459a5e5145e2e92bb9b2aaa18', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (7, 'login', '2025-05-01 00:00:00+00', true, '\x9592bfbd20c2239596c2dec301db0e86037909d90b05687fb7249b5c7610f58307aacdcb20caf093911077991d983bde', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (8, 'oidc users', '2025-05-01 00:00:00+00', true, '\x3ff78dc7509cec553a491b0ecbd4b61eb015b71fdc940924b725ec4af5711ddedd5eee383dbc55ee0cafbed110f7f116', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (9, 'imported key hashes', '2025-05-01 00:00:00+00', true, '\xf96d80640203a117d4097de90459a91c1e11f73a300724ed9acd79b67bd02b963b9759494faa85e5c5686d225de22af2', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (10, 'change log', '2025-05-01 00:00:00+00', true, '\x165fc4b0d43710b972f44a40fec104b7ead94c24c80da3d28e3fa19cf6eab8ff84badfb5e090c650405bc514a8e8abf8', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (11, 'replica shared', '2025-05-01 00:00:00+00', true, '\xf816112157aa29ad76336b2e4ac03a334f6fe74deeead6f43f227d45442da8ac571b6a7c12c9adcc8a7ba1ef49f23586', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (12, 'shared audit', '2025-05-01 00:00:00+00', true, '\x85f3f33f3aa2a0415801a9d4674c1a5e23dd6fda6b11920335366bfbf55ea0471a74bf3e7809ba23a23c6240fe3f3d2d', 0);
INSERT INTO public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (13, 'oidc flows', '2025-05-01 00:00:00+00', true, '\x3fc5d240b5ea9997e1f7a1f4965f71b6a1a5406d5aebae6ac77933ab4210c9a854faacf9be68c69cf8c29ba8f62ac8ce', 0);


--
-- Data for Name: acme_challenges; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: api_keys; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.api_keys (id, prefix, hash, expiration, last_seen, created_at, scope, hash_kind) VALUES (1, 'apik0001', '\x6161616161616161616161616161616161616161616161616161616161616161', NULL, '2025-05-05 05:07:09+00', '2025-05-01 07:07:09+00', 'admin', 'sha256');
INSERT INTO public.api_keys (id, prefix, hash, expiration, last_seen, created_at, scope, hash_kind) VALUES (2, 'apik0002', '\x6262626262626262626262626262626262626262626262626262626262626262', '2025-05-31 00:07:09+00', NULL, '2025-05-01 08:07:09+00', 'whois', 'sha256');


--
-- Data for Name: audit_log; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: auth_requests; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: change_log; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (1, 'user', 1, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (2, 'user', 2, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (3, 'user', 3, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (4, 'user', 4, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (5, 'node', 1, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (6, 'node', 2, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (7, 'node', 3, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (8, 'policy', 1, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (9, 'policy', 2, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (10, 'dns', 1, '2026-12-04 22:35:17.358431+00');
INSERT INTO public.change_log (id, entity, entity_id, at) VALUES (11, 'user', 3, '2026-12-04 22:35:17.358431+00');


--
-- Data for Name: dns_settings; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.dns_settings (id, nameservers, search_paths, magic_dns, updated_at) VALUES (1, '["1.1.1.1","2606:4700:4700::1111"]', NULL, false, '2025-05-09 09:07:09+00');


--
-- Data for Name: nodes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.nodes (id, machine_key, node_key, disco_key, hostname, given_name, user_id, tags, ipv4, ipv6, endpoints, home_derp, hostinfo, expiry, ephemeral, auth_key_id, cap_version, created_at, last_seen, approved_routes, authorized) VALUES (1, 'mkey:1111111111111111111111111111111111111111111111111111111111111111', 'nodekey:2121212121212121212121212121212121212121212121212121212121212121', 'discokey:3131313131313131313131313131313131313131313131313131313131313131', 'Host-1.local', 'host-1', 1, '[]', '100.64.0.1', 'fd7a:115c:a1e0::1', '["192.0.2.1:41641","[2001:db8::1]:41641"]', 901, '{"Hostname":"Host-1.local","IPNVersion":"1.78.1","OS":"linux","RoutableIPs":["10.20.0.0/16"],"Services":[{"Port":22,"Proto":"tcp"}]}', '2025-05-28 12:07:09+00', false, 1, 106, '2025-05-03 09:07:09+00', '2025-05-04 01:07:09+00', '["10.20.0.0/16"]', true);
INSERT INTO public.nodes (id, machine_key, node_key, disco_key, hostname, given_name, user_id, tags, ipv4, ipv6, endpoints, home_derp, hostinfo, expiry, ephemeral, auth_key_id, cap_version, created_at, last_seen, approved_routes, authorized) VALUES (2, 'mkey:1212121212121212121212121212121212121212121212121212121212121212', 'nodekey:2222222222222222222222222222222222222222222222222222222222222222', 'discokey:3232323232323232323232323232323232323232323232323232323232323232', 'Host-2.local', 'host-2', 4, '["tag:server"]', '100.64.0.2', 'fd7a:115c:a1e0::2', '["192.0.2.2:41641","[2001:db8::1]:41641"]', 902, '{"Hostname":"Host-2.local","IPNVersion":"1.78.1","OS":"linux","RoutableIPs":[],"Services":[{"Port":22,"Proto":"tcp"}]}', NULL, false, 1, 106, '2025-05-03 10:07:09+00', NULL, '[]', true);
INSERT INTO public.nodes (id, machine_key, node_key, disco_key, hostname, given_name, user_id, tags, ipv4, ipv6, endpoints, home_derp, hostinfo, expiry, ephemeral, auth_key_id, cap_version, created_at, last_seen, approved_routes, authorized) VALUES (3, 'mkey:1313131313131313131313131313131313131313131313131313131313131313', 'nodekey:2323232323232323232323232323232323232323232323232323232323232323', '', 'Host-3.local', 'host-3', 2, '[]', '100.64.0.3', NULL, '["192.0.2.3:41641","[2001:db8::1]:41641"]', 903, '{"Hostname":"Host-3.local","IPNVersion":"1.78.1","OS":"linux","RoutableIPs":[],"Services":[{"Port":22,"Proto":"tcp"}]}', NULL, true, NULL, 106, '2025-05-03 11:07:09+00', '2025-05-04 03:07:09+00', '[]', false);


--
-- Data for Name: oauth_clients; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.oauth_clients (id, client_id, hash, scopes, tags, description, created_at) VALUES (1, 'kUPGRADE1CNTRL', '\x7777777777777777777777777777777777777777777777777777777777777777', '["auth_keys","devices:core"]', '["tag:ci"]', 'provisioning', '2025-05-06 06:07:09+00');


--
-- Data for Name: oidc_flows; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: policies; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.policies (id, data, created_at) VALUES (1, '{"acls": []}', '2025-05-07 00:07:09+00');
INSERT INTO public.policies (id, data, created_at) VALUES (2, '{
  // the policy as an operator wrote it, comments and all
  "groups": {"group:ops": ["alice@"]},
  "tagOwners": {"tag:server": ["group:ops"], "tag:ci": ["group:ops"]},
  "acls": [{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]}],
  "autoApprovers": {"routes": {"10.20.0.0/16": ["alice@"]}},
}', '2025-05-07 01:07:09+00');


--
-- Data for Name: pre_auth_keys; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.pre_auth_keys (id, prefix, hash, user_id, reusable, ephemeral, used, tags, expiration, created_at, description, preauthorized, hash_kind) VALUES (1, 'upgr0001', '\x4141414141414141414141414141414141414141414141414141414141414141', 1, true, false, false, '["tag:ci"]', '2025-05-30 00:07:09+00', '2025-05-02 11:07:09+00', 'CI runners', true, 'sha256');
INSERT INTO public.pre_auth_keys (id, prefix, hash, user_id, reusable, ephemeral, used, tags, expiration, created_at, description, preauthorized, hash_kind) VALUES (2, 'upgr0002', '\x4242424242424242424242424242424242424242424242424242424242424242', 2, false, true, true, '[]', NULL, '2025-05-02 12:07:09+00', '', false, 'sha256');


--
-- Data for Name: presence; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: replicas; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.users (id, name, display_name, email, created_at, oidc_issuer, oidc_subject, profile_pic_url, oidc_groups) VALUES (1, 'alice', 'Alice Liddell', 'alice@example.com', '2025-05-01 09:07:09+00', 'https://sso.example.com/realms/corp', '3f2a9c1e-alice', 'https://sso.example.com/avatars/alice.png', '["ops","mcp-admins"]');
INSERT INTO public.users (id, name, display_name, email, created_at, oidc_issuer, oidc_subject, profile_pic_url, oidc_groups) VALUES (2, 'bob', '', '', '2025-05-01 09:07:09+00', NULL, NULL, '', '[]');
INSERT INTO public.users (id, name, display_name, email, created_at, oidc_issuer, oidc_subject, profile_pic_url, oidc_groups) VALUES (4, 'dave', 'Dave', 'dave@example.org', '2025-05-02 09:07:09+00', NULL, NULL, '', '[]');


--
-- Data for Name: write_probe; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.write_probe (id, checked_at) VALUES (1, '2025-05-08 08:07:09+00');


--
-- Name: api_keys_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.api_keys_id_seq', 2, true);


--
-- Name: audit_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.audit_log_id_seq', 1, false);


--
-- Name: change_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.change_log_id_seq', 11, true);


--
-- Name: nodes_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.nodes_id_seq', 3, true);


--
-- Name: oauth_clients_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.oauth_clients_id_seq', 1, true);


--
-- Name: policies_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.policies_id_seq', 2, true);


--
-- Name: pre_auth_keys_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.pre_auth_keys_id_seq', 2, true);


--
-- Name: users_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.users_id_seq', 4, true);


--
-- Name: _sqlx_migrations _sqlx_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public._sqlx_migrations
    ADD CONSTRAINT _sqlx_migrations_pkey PRIMARY KEY (version);


--
-- Name: acme_challenges acme_challenges_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.acme_challenges
    ADD CONSTRAINT acme_challenges_pkey PRIMARY KEY (owner, value);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);


--
-- Name: api_keys api_keys_prefix_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_prefix_key UNIQUE (prefix);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: auth_requests auth_requests_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_requests
    ADD CONSTRAINT auth_requests_pkey PRIMARY KEY (id_hash);


--
-- Name: change_log change_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.change_log
    ADD CONSTRAINT change_log_pkey PRIMARY KEY (id);


--
-- Name: dns_settings dns_settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dns_settings
    ADD CONSTRAINT dns_settings_pkey PRIMARY KEY (id);


--
-- Name: nodes nodes_given_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_given_name_key UNIQUE (given_name);


--
-- Name: nodes nodes_ipv4_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_ipv4_key UNIQUE (ipv4);


--
-- Name: nodes nodes_ipv6_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_ipv6_key UNIQUE (ipv6);


--
-- Name: nodes nodes_machine_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_machine_key_key UNIQUE (machine_key);


--
-- Name: nodes nodes_node_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_node_key_key UNIQUE (node_key);


--
-- Name: nodes nodes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_pkey PRIMARY KEY (id);


--
-- Name: oauth_clients oauth_clients_client_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.oauth_clients
    ADD CONSTRAINT oauth_clients_client_id_key UNIQUE (client_id);


--
-- Name: oauth_clients oauth_clients_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.oauth_clients
    ADD CONSTRAINT oauth_clients_pkey PRIMARY KEY (id);


--
-- Name: oidc_flows oidc_flows_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.oidc_flows
    ADD CONSTRAINT oidc_flows_pkey PRIMARY KEY (state_hash);


--
-- Name: policies policies_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_pkey PRIMARY KEY (id);


--
-- Name: pre_auth_keys pre_auth_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pre_auth_keys
    ADD CONSTRAINT pre_auth_keys_pkey PRIMARY KEY (id);


--
-- Name: pre_auth_keys pre_auth_keys_prefix_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pre_auth_keys
    ADD CONSTRAINT pre_auth_keys_prefix_key UNIQUE (prefix);


--
-- Name: presence presence_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.presence
    ADD CONSTRAINT presence_pkey PRIMARY KEY (node_id);


--
-- Name: replicas replicas_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.replicas
    ADD CONSTRAINT replicas_pkey PRIMARY KEY (name);


--
-- Name: users users_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_name_key UNIQUE (name);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: write_probe write_probe_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.write_probe
    ADD CONSTRAINT write_probe_pkey PRIMARY KEY (id);


--
-- Name: audit_log_time; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_log_time ON public.audit_log USING btree ("time");


--
-- Name: nodes_user_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX nodes_user_id ON public.nodes USING btree (user_id);


--
-- Name: users_oidc_identity; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX users_oidc_identity ON public.users USING btree (oidc_issuer, oidc_subject);


--
-- Name: dns_settings dns_settings_change_log; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER dns_settings_change_log AFTER INSERT OR DELETE OR UPDATE ON public.dns_settings FOR EACH ROW EXECUTE FUNCTION public.clawscale_log_change('dns');


--
-- Name: nodes nodes_change_log; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER nodes_change_log AFTER INSERT OR DELETE OR UPDATE ON public.nodes FOR EACH ROW EXECUTE FUNCTION public.clawscale_log_change('node');


--
-- Name: policies policies_change_log; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER policies_change_log AFTER INSERT OR DELETE OR UPDATE ON public.policies FOR EACH ROW EXECUTE FUNCTION public.clawscale_log_change('policy');


--
-- Name: presence presence_change_log; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER presence_change_log AFTER INSERT OR DELETE OR UPDATE ON public.presence FOR EACH ROW EXECUTE FUNCTION public.clawscale_log_change('presence', 'node_id');


--
-- Name: replicas replicas_change_log; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER replicas_change_log AFTER INSERT OR DELETE OR UPDATE OF derp_region ON public.replicas FOR EACH ROW EXECUTE FUNCTION public.clawscale_log_change('replica', 'none');


--
-- Name: users users_change_log; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER users_change_log AFTER INSERT OR DELETE OR UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.clawscale_log_change('user');


--
-- Name: nodes nodes_auth_key_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_auth_key_id_fkey FOREIGN KEY (auth_key_id) REFERENCES public.pre_auth_keys(id) ON DELETE SET NULL;


--
-- Name: nodes nodes_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE RESTRICT;


--
-- Name: pre_auth_keys pre_auth_keys_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pre_auth_keys
    ADD CONSTRAINT pre_auth_keys_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: presence presence_node_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.presence
    ADD CONSTRAINT presence_node_id_fkey FOREIGN KEY (node_id) REFERENCES public.nodes(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


