-- Several instances on one database (issue 20).
--
-- * `template_generation`: one row counting changes to `email_templates`
--   (any insert, update or delete, by any writer, through a statement
--   trigger). Each instance reads it about once a second
--   (`PgTemplateStore::generation`, one primary-key read) and reloads its
--   templates when it moved, so a template saved on one instance is in
--   force on every instance within about a second. The trigger also sends
--   `NOTIFY resetkit_templates` for hosts that prefer to listen.

CREATE TABLE __SCHEMA__.template_generation (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    n  bigint  NOT NULL
);
INSERT INTO __SCHEMA__.template_generation (id, n) VALUES (true, 0);

CREATE FUNCTION __SCHEMA__.bump_template_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE __SCHEMA__.template_generation SET n = n + 1 WHERE id;
    PERFORM pg_notify('resetkit_templates', '__SCHEMA__');
    RETURN NULL;
END;
$$;

CREATE TRIGGER email_templates_generation
    AFTER INSERT OR UPDATE OR DELETE ON __SCHEMA__.email_templates
    FOR EACH STATEMENT EXECUTE FUNCTION __SCHEMA__.bump_template_generation();
