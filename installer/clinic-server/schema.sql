-- The schema the record lives in (run by prepare.sh as the admin, in the clinic's database):
-- only the owner may create objects in it; the console role may use what is there.
\set ON_ERROR_STOP on

REVOKE ALL ON SCHEMA public FROM PUBLIC;
SELECT format('ALTER SCHEMA public OWNER TO %I', :'owner') \gexec
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'console') \gexec
