-- Creation: the revision at which each key was created, the change that
-- made it exist after it was absent. Kept on the key's row, which lives as
-- long as the key, because a put deletes the key's earlier transactions and
-- with them the one that created it. NULL where no revision is known
-- (writers of the original protocol give none).
ALTER TABLE "int_keys" ADD COLUMN IF NOT EXISTS "created_revision" BIGINT;
ALTER TABLE "uint_keys" ADD COLUMN IF NOT EXISTS "created_revision" BIGINT;
ALTER TABLE "float_keys" ADD COLUMN IF NOT EXISTS "created_revision" BIGINT;
ALTER TABLE "string_keys" ADD COLUMN IF NOT EXISTS "created_revision" BIGINT;
ALTER TABLE "map_keys" ADD COLUMN IF NOT EXISTS "created_revision" BIGINT;
ALTER TABLE "set_keys" ADD COLUMN IF NOT EXISTS "created_revision" BIGINT;

-- The keys already there: the earliest revision among the rows they have
-- left, the most this log still knows of their creation.
UPDATE "int_keys" k SET "created_revision" = f."first"
FROM (SELECT "key_id", MIN("revision") AS "first" FROM "int_transactions"
      WHERE "transaction_type" <> 'TransactionGet' GROUP BY "key_id") f
WHERE f."key_id" = k."id";
UPDATE "uint_keys" k SET "created_revision" = f."first"
FROM (SELECT "key_id", MIN("revision") AS "first" FROM "uint_transactions"
      WHERE "transaction_type" <> 'TransactionGet' GROUP BY "key_id") f
WHERE f."key_id" = k."id";
UPDATE "float_keys" k SET "created_revision" = f."first"
FROM (SELECT "key_id", MIN("revision") AS "first" FROM "float_transactions"
      WHERE "transaction_type" <> 'TransactionGet' GROUP BY "key_id") f
WHERE f."key_id" = k."id";
UPDATE "string_keys" k SET "created_revision" = f."first"
FROM (SELECT "key_id", MIN("revision") AS "first" FROM "string_transactions"
      WHERE "transaction_type" <> 'TransactionGet' GROUP BY "key_id") f
WHERE f."key_id" = k."id";
UPDATE "map_keys" k SET "created_revision" = f."first"
FROM (SELECT "key_id", MIN("revision") AS "first" FROM "map_transactions"
      WHERE "transaction_type" <> 'TransactionGet' GROUP BY "key_id") f
WHERE f."key_id" = k."id";
UPDATE "set_keys" k SET "created_revision" = f."first"
FROM (SELECT "key_id", MIN("revision") AS "first" FROM "set_transactions"
      WHERE "transaction_type" <> 'TransactionGet' GROUP BY "key_id") f
WHERE f."key_id" = k."id";
