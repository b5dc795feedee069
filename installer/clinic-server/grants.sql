-- The console role's rights, computed from the schema as it is now (run by prepare.sh as the
-- owner after every migration; idempotent). Every table in the schema:
--
--   append-only (it has the trigger that calls refuse_append_only_change(): the audit trail,
--   signing keys, session signatures and session events)   SELECT, INSERT
--   alembic_version (the schema version)                     SELECT
--   every other table (users, patients, sessions, …)         SELECT, INSERT, UPDATE
--   every sequence                                           USAGE, SELECT
--
-- Nothing else: no UPDATE, DELETE or TRUNCATE of the append-only tables, no DELETE anywhere
-- (the console never deletes: corrections are new rows), no DDL. The triggers refuse UPDATE and
-- DELETE of the trail for everyone, the owner included; these grants refuse them earlier, with
-- "permission denied", for the consoles. A table added by a later migration is covered when
-- this runs again.
\set ON_ERROR_STOP on

\o /dev/null
SELECT set_config('therapy.console_role', :'console', false);
\o

DO $grants$
DECLARE
    console_role text := current_setting('therapy.console_role');
    item record;
    append_only boolean;
BEGIN
    FOR item IN
        SELECT c.oid, c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        ORDER BY c.relname
    LOOP
        EXECUTE format('REVOKE ALL ON TABLE public.%I FROM %I', item.relname, console_role);
        SELECT EXISTS (
            SELECT FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = item.oid AND p.proname = 'refuse_append_only_change'
        ) INTO append_only;
        IF item.relname = 'alembic_version' THEN
            EXECUTE format('GRANT SELECT ON TABLE public.%I TO %I', item.relname, console_role);
        ELSIF append_only THEN
            EXECUTE format(
                'GRANT SELECT, INSERT ON TABLE public.%I TO %I', item.relname, console_role
            );
        ELSE
            EXECUTE format(
                'GRANT SELECT, INSERT, UPDATE ON TABLE public.%I TO %I', item.relname, console_role
            );
        END IF;
    END LOOP;
    FOR item IN
        SELECT c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'S'
    LOOP
        EXECUTE format(
            'GRANT USAGE, SELECT ON SEQUENCE public.%I TO %I', item.relname, console_role
        );
    END LOOP;
END
$grants$;

-- what the console role may do now, for the log
SELECT c.relname AS "table", string_agg(p.privilege_type, ', ' ORDER BY p.privilege_type) AS "console role may"
FROM information_schema.role_table_grants p
JOIN pg_class c ON c.relname = p.table_name
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = p.table_schema
WHERE p.grantee = current_setting('therapy.console_role') AND p.table_schema = 'public'
GROUP BY c.relname
ORDER BY c.relname;
