-- The database and account of one ItemService, least privilege: what `items-service migrate`
-- (the operator's migration Job: CREATE/ALTER tables and indexes, foreign keys, the
-- alembic_version row) and the service (row reads and writes) need, on that database only.
-- Migrations serialise with GET_LOCK, which needs no privilege. No DROP: migrations are
-- expand-only (a downgrade, run by hand, would need it).
-- hack/quickstart replaces @DATABASE@, @USER@ and @PASSWORD@ and runs this as root.
CREATE DATABASE IF NOT EXISTS `@DATABASE@`;
CREATE USER IF NOT EXISTS '@USER@'@'%' IDENTIFIED BY '@PASSWORD@';
ALTER USER '@USER@'@'%' IDENTIFIED BY '@PASSWORD@';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES ON `@DATABASE@`.* TO '@USER@'@'%';
