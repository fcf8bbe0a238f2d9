-- The write lease: the right to append with an epoch, held by one writer
-- at a time until it lapses. The epoch rises at every change of holder, and
-- an append of any other epoch is refused (kvs_lease_fence). Every time is
-- the database's clock, so that the clocks of the writers' machines cannot
-- give it to two at once. One row, there from the start: never taken, it
-- has no holder, epoch 0 and a lease that lapsed long ago.
CREATE TABLE IF NOT EXISTS "kvs_lease" (
    "one" BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK ("one"),
    "holder" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "epoch" BIGINT NOT NULL,
    "expires_at" TIMESTAMPTZ NOT NULL);
INSERT INTO "kvs_lease" ("holder", "url", "epoch", "expires_at")
VALUES ('', '', 0, to_timestamp(0))
ON CONFLICT DO NOTHING;

-- The first statement of every batch's transaction, which holds a shared
-- advisory lock (7743503462987817331: "kvs_leas") until it commits; a take
-- holds it exclusively while it raises the epoch. A take thus waits for the
-- batches in flight, a batch behind a take waits for it and then reads its
-- epoch (each statement of a function reads anew), and the lock's queue is
-- first come first served, so a stream of batches cannot hold a take off.
-- Once a take has committed, no batch of an older epoch can. A renewal
-- changes only the expiry and takes no advisory lock: it never waits for a
-- batch. SQLSTATE KV001: fenced.
CREATE OR REPLACE FUNCTION "kvs_lease_fence"("writer_epoch" BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    "lease" "kvs_lease"%ROWTYPE;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7743503462987817331);
    SELECT * INTO "lease" FROM "kvs_lease";
    IF "writer_epoch" = 0 THEN
        IF "lease"."expires_at" > clock_timestamp() THEN
            RAISE EXCEPTION USING ERRCODE = 'KV001', MESSAGE = format(
                'fenced: epoch 0 while %s holds the lease at epoch %s',
                "lease"."holder", "lease"."epoch");
        END IF;
    ELSIF "writer_epoch" <> "lease"."epoch" THEN
        RAISE EXCEPTION USING ERRCODE = 'KV001', MESSAGE = format(
            'fenced: epoch %s, where the lease is at epoch %s, held by %s',
            "writer_epoch", "lease"."epoch", "lease"."holder");
    END IF;
END $$;

-- Takes, renews or reads the lease, in one statement. With "take": renews
-- it (same epoch, new expiry) if "asker" holds it at "asker_epoch" and it
-- is live; takes it (the next epoch) if it lapsed; otherwise leaves it.
-- Answers the lease as it leaves it, "held" if the asker holds it at the
-- epoch it asked with or was given.
CREATE OR REPLACE FUNCTION "kvs_lease_ask"(
    "asker" TEXT, "asker_url" TEXT, "asker_epoch" BIGINT, "take" BOOLEAN, "ttl_ms" BIGINT)
RETURNS TABLE ("holder" TEXT, "url" TEXT, "epoch" BIGINT, "remaining_ms" BIGINT, "held" BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    "lease" "kvs_lease"%ROWTYPE;
    "at" TIMESTAMPTZ;
    "mine" BOOLEAN;
BEGIN
    IF "take" THEN
        -- Serialises the asks; batches do not lock the row.
        SELECT * INTO "lease" FROM "kvs_lease" FOR UPDATE;
    ELSE
        SELECT * INTO "lease" FROM "kvs_lease";
    END IF;
    "at" := clock_timestamp();
    "mine" := "lease"."holder" = "asker" AND "lease"."epoch" = "asker_epoch";
    IF "take" AND "lease"."expires_at" > "at" THEN
        IF "lease"."holder" = "asker" AND "lease"."epoch" = "asker_epoch" THEN
            UPDATE "kvs_lease" SET
                "url" = "asker_url",
                "expires_at" = "at" + "ttl_ms" * INTERVAL '1 millisecond'
            RETURNING * INTO "lease";
        END IF;
    ELSIF "take" THEN
        PERFORM pg_advisory_xact_lock(7743503462987817331);
        "at" := clock_timestamp();
        UPDATE "kvs_lease" SET
            "holder" = "asker",
            "url" = "asker_url",
            "epoch" = "kvs_lease"."epoch" + 1,
            "expires_at" = "at" + "ttl_ms" * INTERVAL '1 millisecond'
        RETURNING * INTO "lease";
        "mine" := TRUE;
    END IF;
    "at" := clock_timestamp();
    RETURN QUERY SELECT
        "lease"."holder",
        "lease"."url",
        "lease"."epoch",
        GREATEST(0, ceil(EXTRACT(EPOCH FROM "lease"."expires_at" - "at") * 1000))::BIGINT,
        "mine" AND "lease"."expires_at" > "at";
END $$;
