-- Expiry: when a key with a TTL expires, in milliseconds since the Unix
-- epoch; NULL for a key without one. Kept on the key's row, which lives as
-- long as the key: puts replace a key's transactions, not its row.
ALTER TABLE "int_keys" ADD COLUMN IF NOT EXISTS "expires_at" BIGINT;
ALTER TABLE "uint_keys" ADD COLUMN IF NOT EXISTS "expires_at" BIGINT;
ALTER TABLE "float_keys" ADD COLUMN IF NOT EXISTS "expires_at" BIGINT;
ALTER TABLE "string_keys" ADD COLUMN IF NOT EXISTS "expires_at" BIGINT;
ALTER TABLE "map_keys" ADD COLUMN IF NOT EXISTS "expires_at" BIGINT;
ALTER TABLE "set_keys" ADD COLUMN IF NOT EXISTS "expires_at" BIGINT;

-- A replay reads the keys that have one: few, among many.
CREATE INDEX IF NOT EXISTS "int_keys_expires_at" ON "int_keys" ("id") WHERE "expires_at" IS NOT NULL;
CREATE INDEX IF NOT EXISTS "uint_keys_expires_at" ON "uint_keys" ("id") WHERE "expires_at" IS NOT NULL;
CREATE INDEX IF NOT EXISTS "float_keys_expires_at" ON "float_keys" ("id") WHERE "expires_at" IS NOT NULL;
CREATE INDEX IF NOT EXISTS "string_keys_expires_at" ON "string_keys" ("id") WHERE "expires_at" IS NOT NULL;
CREATE INDEX IF NOT EXISTS "map_keys_expires_at" ON "map_keys" ("id") WHERE "expires_at" IS NOT NULL;
CREATE INDEX IF NOT EXISTS "set_keys_expires_at" ON "set_keys" ("id") WHERE "expires_at" IS NOT NULL;
