-- Each writer's durable sequence, committed with its batches, so that a
-- batch resent after a lost answer is recognised and not applied twice.
CREATE TABLE IF NOT EXISTS "kvs_writers" (
    "writer_id" TEXT PRIMARY KEY,
    "sequence" BIGINT NOT NULL,
    "updated_at" TIMESTAMP NOT NULL DEFAULT NOW());

-- Compaction deletes a key's earlier transactions on every put and delete:
-- these make that a lookup instead of a scan.
CREATE INDEX IF NOT EXISTS "int_transactions_key_id" ON "int_transactions" ("key_id");
CREATE INDEX IF NOT EXISTS "uint_transactions_key_id" ON "uint_transactions" ("key_id");
CREATE INDEX IF NOT EXISTS "float_transactions_key_id" ON "float_transactions" ("key_id");
CREATE INDEX IF NOT EXISTS "string_transactions_key_id" ON "string_transactions" ("key_id");
CREATE INDEX IF NOT EXISTS "map_transactions_key_id" ON "map_transactions" ("key_id");
CREATE INDEX IF NOT EXISTS "map_key_value_pairs_map_key_id" ON "map_key_value_pairs" ("map_key_id");
CREATE INDEX IF NOT EXISTS "map_key_value_pairs_transaction_id" ON "map_key_value_pairs" ("transaction_id");
CREATE INDEX IF NOT EXISTS "set_transactions_key_id" ON "set_transactions" ("key_id");
CREATE INDEX IF NOT EXISTS "set_members_set_key_id" ON "set_members" ("set_key_id");
CREATE INDEX IF NOT EXISTS "set_members_transaction_id" ON "set_members" ("transaction_id");
