-- Revisions: every change to the store has one, from one counter for the
-- whole store. Each transaction row keeps its change's revision; NULL for
-- rows written without one (writers of the original protocol), which a
-- replay numbers after the head, anew at each replay.
ALTER TABLE "int_transactions" ADD COLUMN IF NOT EXISTS "revision" BIGINT;
ALTER TABLE "uint_transactions" ADD COLUMN IF NOT EXISTS "revision" BIGINT;
ALTER TABLE "float_transactions" ADD COLUMN IF NOT EXISTS "revision" BIGINT;
ALTER TABLE "string_transactions" ADD COLUMN IF NOT EXISTS "revision" BIGINT;
ALTER TABLE "map_transactions" ADD COLUMN IF NOT EXISTS "revision" BIGINT;
ALTER TABLE "set_transactions" ADD COLUMN IF NOT EXISTS "revision" BIGINT;

-- The rows already there get revisions 1..N in the order a replay reads
-- them: table by table (int, uint, float, string, map, set), by id within
-- a table.
CREATE TEMPORARY TABLE "kvs_replay_order" ON COMMIT DROP AS
SELECT "t", "id", row_number() OVER (ORDER BY "t", "id") AS "revision"
FROM (
    SELECT 0 AS "t", "id" FROM "int_transactions"
    UNION ALL SELECT 1, "id" FROM "uint_transactions"
    UNION ALL SELECT 2, "id" FROM "float_transactions"
    UNION ALL SELECT 3, "id" FROM "string_transactions"
    UNION ALL SELECT 4, "id" FROM "map_transactions"
    UNION ALL SELECT 5, "id" FROM "set_transactions") AS "rows";

UPDATE "int_transactions" x SET "revision" = o."revision"
FROM "kvs_replay_order" o WHERE o."t" = 0 AND o."id" = x."id";
UPDATE "uint_transactions" x SET "revision" = o."revision"
FROM "kvs_replay_order" o WHERE o."t" = 1 AND o."id" = x."id";
UPDATE "float_transactions" x SET "revision" = o."revision"
FROM "kvs_replay_order" o WHERE o."t" = 2 AND o."id" = x."id";
UPDATE "string_transactions" x SET "revision" = o."revision"
FROM "kvs_replay_order" o WHERE o."t" = 3 AND o."id" = x."id";
UPDATE "map_transactions" x SET "revision" = o."revision"
FROM "kvs_replay_order" o WHERE o."t" = 4 AND o."id" = x."id";
UPDATE "set_transactions" x SET "revision" = o."revision"
FROM "kvs_replay_order" o WHERE o."t" = 5 AND o."id" = x."id";

-- The highest revision given, which deletes leave without a row: one row,
-- raised by every batch in its own database transaction.
CREATE TABLE IF NOT EXISTS "kvs_revision_head" (
    "one" BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK ("one"),
    "head" BIGINT NOT NULL);
INSERT INTO "kvs_revision_head" ("head")
SELECT COALESCE(MAX("revision"), 0) FROM "kvs_replay_order"
ON CONFLICT ("one") DO NOTHING;
