-- 003_operator_api.sql - what the operator API needs: attempt history,
-- idempotency keys, and an index for every order the listing pages by.
-- Safe to run again (IF NOT EXISTS everywhere); the service applies it under
-- the migration lock, the database container's initdb after 002.

-- One row per webhook attempt, written by the same statement as the
-- attempt's outcome, so every byte of upkeep here is paid on the drain's
-- hot path: one index only (a message's attempts, in the order they
-- started: attempts of one message never overlap), no serial key, no
-- foreign key (checking it would cost a lookup and a row lock per attempt;
-- the service never deletes messages).
CREATE TABLE IF NOT EXISTS delivery_attempts (
	message_id    bigint       NOT NULL,
	attempt       integer      NOT NULL,
	started_at    timestamptz  NOT NULL,
	finished_at   timestamptz  NOT NULL,
	duration_ms   integer      NOT NULL,
	-- NULL when no complete HTTP answer came (timeout, connection error)
	response_code integer,
	error         text,
	response_id   varchar(255),
	instance      text         NOT NULL
);

CREATE INDEX IF NOT EXISTS delivery_attempts_message_idx
	ON delivery_attempts (message_id, started_at);

-- Idempotency-Key of POST /messages: the key, the request it answered
-- (recipient and content, compared on reuse) and the message it created.
-- The primary key is what makes two instances racing on one key create one
-- message; expired keys (24 h) are swept in small batches.
CREATE TABLE IF NOT EXISTS idempotency_keys (
	key        varchar(255) PRIMARY KEY,
	recipient  varchar(20)  NOT NULL,
	content    varchar(160) NOT NULL,
	message_id bigint       NOT NULL,
	created_at timestamptz  NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idempotency_keys_created_idx
	ON idempotency_keys (created_at);

-- The pending and failed listings (newest first) and the failed replay
-- walk these; "all" walks the primary key; "sent" has messages_sent_idx.
CREATE INDEX IF NOT EXISTS messages_pending_id_idx
	ON messages (id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS messages_failed_id_idx
	ON messages (id) WHERE status = 'failed';
