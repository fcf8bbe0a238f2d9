-- Sets, in the shape of maps: a key table, a transaction table, and the
-- members of each put. Members go with their transaction and key.

CREATE TABLE IF NOT EXISTS "set_keys" (
    "id" SERIAL,
    "key" TEXT NOT NULL UNIQUE,
    PRIMARY KEY ("id"));

CREATE TABLE IF NOT EXISTS "set_transactions" (
    "id" SERIAL,
    "transaction_type" CHARACTER VARYING(32) NOT NULL,
    "key_id" INTEGER NOT NULL,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("key_id") REFERENCES "set_keys" ("id") ON DELETE CASCADE);

CREATE TABLE IF NOT EXISTS "set_members" (
    "transaction_id" INTEGER NOT NULL,
    "set_key_id" INTEGER NOT NULL,
    "member" TEXT NOT NULL,
    FOREIGN KEY ("set_key_id") REFERENCES "set_keys" ("id") ON DELETE CASCADE,
    FOREIGN KEY ("transaction_id") REFERENCES "set_transactions" ("id") ON DELETE CASCADE);
