-- Records a hit only while the key has fewer than p_max hits in
-- (window_start, at]; returns whether it was recorded. Refused attempts are
-- not stored, so requests for someone else's account cannot keep its window
-- full. Serialised per key by the same advisory lock as rate_hit.
CREATE FUNCTION __SCHEMA__.rate_admit(p_key text, p_at timestamptz, p_window_start timestamptz, p_max bigint)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('resetkit.rate_hit:' || p_key, 0));
    DELETE FROM __SCHEMA__.rate_hits WHERE key = p_key AND at <= p_window_start;
    SELECT count(*) INTO n FROM __SCHEMA__.rate_hits
        WHERE key = p_key AND at > p_window_start AND at <= p_at;
    IF n >= p_max THEN
        RETURN false;
    END IF;
    INSERT INTO __SCHEMA__.rate_hits (key, at) VALUES (p_key, p_at);
    RETURN true;
END
$fn$;
