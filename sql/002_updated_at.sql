-- 002_updated_at.sql - updated_at is set by the statement that changes a row.
-- 001 kept it with a BEFORE UPDATE trigger, which ran PL/pgSQL for every row
-- of every claim and every outcome batch, twice per message: the service's
-- UPDATEs now set updated_at = now() themselves (writers outside the service
-- should too). Safe to run again, and from several instances at once: the
-- service applies it under the migration lock, once; the database container's
-- initdb runs it after 001. DROP TRIGGER locks the table for a moment only.

DROP TRIGGER IF EXISTS messages_touch_updated_at ON messages;
DROP FUNCTION IF EXISTS messages_touch_updated_at();
