-- Replicas (docs/replicas.md): several servers on this database follow each
-- other's writes through this log. A trigger on every table the World is
-- built from appends one row per changed row, in the writing transaction,
-- and NOTIFYs its id (delivered on commit, dropped on rollback). The
-- transaction-scoped advisory lock makes ids commit in id order, so a
-- reader that has applied id N and reads "id > N" can never miss a row
-- that commits later with a smaller id.
CREATE TABLE change_log (
    id        BIGSERIAL   PRIMARY KEY,
    entity    TEXT        NOT NULL,
    entity_id BIGINT      NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION clawscale_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER nodes_change_log AFTER INSERT OR UPDATE OR DELETE ON nodes
    FOR EACH ROW EXECUTE FUNCTION clawscale_log_change('node');
CREATE TRIGGER users_change_log AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION clawscale_log_change('user');
CREATE TRIGGER policies_change_log AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION clawscale_log_change('policy');
CREATE TRIGGER dns_settings_change_log AFTER INSERT OR UPDATE OR DELETE ON dns_settings
    FOR EACH ROW EXECUTE FUNCTION clawscale_log_change('dns');

-- The running replicas: each heartbeats its row; one whose heartbeat is
-- older than the timeout is dead (its streams count as gone, its relay
-- leaves the DERP map). `derp_region`: its embedded relay's region as
-- tailcfg.DERPRegion JSON, NULL without one.
CREATE TABLE replicas (
    name         TEXT        PRIMARY KEY,
    derp_region  TEXT        NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);

-- Which replica holds each connected node's newest map stream.
CREATE TABLE presence (
    node_id BIGINT      PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    replica TEXT        NOT NULL,
    since   TIMESTAMPTZ NOT NULL
);

CREATE TRIGGER presence_change_log AFTER INSERT OR UPDATE OR DELETE ON presence
    FOR EACH ROW EXECUTE FUNCTION clawscale_log_change('presence', 'node_id');
-- Joins and leaves (not heartbeats) change the DERP map.
CREATE TRIGGER replicas_change_log AFTER INSERT OR DELETE OR UPDATE OF derp_region
    ON replicas FOR EACH ROW EXECUTE FUNCTION clawscale_log_change('replica', 'none');
