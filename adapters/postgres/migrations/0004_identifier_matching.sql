-- resetkit schema, version 4: identifiers are matched the way the core
-- matches them, and unknown identifiers are no longer kept in clear.
-- Does not depend on version 3.
--
-- `canonical_identifier(text)` is resetkit's canonical form in SQL: NFKC,
-- full Unicode case folding, NFKC, trim (Unicode White_Space), repeated to a
-- fixed point, exactly as `resetkit::identifier::canonicalize`. PostgreSQL
-- 15 has no full case folding (`casefold()` arrived in 18), so the folding
-- table is written into the function when this migration is applied,
-- generated from the core's own folding (`icu_casemap`): single-character
-- folds through `translate`, multi-character folds (ß -> ss, ŉ -> ʼn, ...)
-- through `replace`. It needs a UTF8 database (`normalize`).
--
-- A host table mapped with `UsersTable` is searched with
-- `<schema>.canonical_identifier(<column>) = $1`; index that expression:
--   CREATE INDEX users_email_canonical ON users (resetkit.canonical_identifier(email));
--   CREATE INDEX users_username_canonical ON users (resetkit.canonical_identifier(username));
CREATE FUNCTION __SCHEMA__.canonical_identifier(p_input text)
RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog AS $fn$
DECLARE
    cur text := p_input;
    nxt text;
    pair text[];
BEGIN
    FOR i IN 1..9 LOOP
        nxt := normalize(cur, NFKC);
        nxt := translate(nxt, __FOLD_FROM__, __FOLD_TO__);
        FOREACH pair SLICE 1 IN ARRAY __FOLD_MULTI__ LOOP
            nxt := replace(nxt, pair[1], pair[2]);
        END LOOP;
        nxt := btrim(normalize(nxt, NFKC), __WHITESPACE__);
        EXIT WHEN nxt = cur;
        cur := nxt;
    END LOOP;
    RETURN cur;
END
$fn$;

-- resetkit:own-accounts {
DROP INDEX IF EXISTS __SCHEMA__.accounts_email_lower;
CREATE INDEX accounts_email_canonical ON __SCHEMA__.accounts (__SCHEMA__.canonical_identifier(email));
CREATE INDEX accounts_username_canonical ON __SCHEMA__.accounts (__SCHEMA__.canonical_identifier(username));
-- resetkit:own-accounts }

-- Requests for unknown identifiers recorded before version 4 kept what was
-- typed (sometimes a password) in clear: erase it. Such rows keep an empty
-- fingerprint.
UPDATE __SCHEMA__.events
   SET detail = (detail - 'identifier') || jsonb_build_object('fingerprint', '')
 WHERE kind = 'request_ignored' AND detail ? 'identifier';
