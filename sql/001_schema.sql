-- 001_schema.sql - the messages table.
-- Applied by the service at start-up (tracked in schema_migrations, under an
-- advisory lock) and by the database container's initdb; so every statement
-- must be safe to run again.

CREATE TABLE IF NOT EXISTS messages (
	id              bigserial PRIMARY KEY,
	recipient       varchar(20)  NOT NULL,
	content         varchar(160) NOT NULL,
	status          varchar(16)  NOT NULL DEFAULT 'pending'
	                CONSTRAINT messages_status_check
	                CHECK (status IN ('pending', 'sent', 'failed')),
	sent_at         timestamptz,
	retry_count     integer      NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
	last_attempt_at timestamptz,
	-- when a pending message may next be claimed (backoff after a failure)
	next_attempt_at timestamptz  NOT NULL DEFAULT now(),
	-- a claim: who holds the message and until when; an expired lease
	-- makes the message due again (a crashed sender's claim)
	lease_token     uuid,
	lease_until     timestamptz,
	response_id     varchar(255),
	response_code   integer,
	error_message   text,
	created_at      timestamptz  NOT NULL DEFAULT now(),
	updated_at      timestamptz  NOT NULL DEFAULT now()
);

-- The claim: pending and due, oldest first.
CREATE INDEX IF NOT EXISTS messages_due_idx
	ON messages (next_attempt_at, id) WHERE status = 'pending';

-- The sent listing: most recently sent first.
CREATE INDEX IF NOT EXISTS messages_sent_idx
	ON messages (sent_at DESC, id DESC) WHERE status = 'sent';

CREATE OR REPLACE FUNCTION messages_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	NEW.updated_at := now();
	RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS messages_touch_updated_at ON messages;
CREATE TRIGGER messages_touch_updated_at BEFORE UPDATE ON messages
	FOR EACH ROW EXECUTE FUNCTION messages_touch_updated_at();
