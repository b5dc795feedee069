-- The clinic server's roles and database (run by prepare.sh as a PostgreSQL admin, in the
-- database "postgres"). Idempotent: what exists is kept; passwords are set only when given.
--
-- psql variables: owner, console, dbname, owner_password, console_password ('' = leave as is)
--
--   owner    owns the database and its schema; runs `therapy-console db upgrade` (migrations)
--            and grants.sql. Not used by the consoles.
--   console  what every treatment room's console connects as: no DDL, and on the audit trail
--            (and the other append-only tables) only SELECT and INSERT (grants.sql).
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec

SELECT format(
    'CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT',
    :'console'
)
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'console') \gexec

SELECT format('ALTER ROLE %I PASSWORD %L', :'owner', :'owner_password')
WHERE :'owner_password' <> '' \gexec

SELECT format('ALTER ROLE %I PASSWORD %L', :'console', :'console_password')
WHERE :'console_password' <> '' \gexec

SELECT format(
    'CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'dbname', :'owner', 'UTF8'
)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dbname') \gexec

-- nobody else may connect or make temporary tables; the consoles may connect
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'dbname') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'dbname', :'console') \gexec
