-- The original service's tables, as its README defines them, so that a
-- database it wrote is used as it is.
--
-- The time column: the original README names it "insert_time" in the
-- scalar tables and "timestamp" in map_transactions. We pick "insert_time"
-- for every table we create. KVS never names the time column in a query
-- (replay orders by id; inserts leave it to its default), so a database
-- the original created with either name replays and takes writes.

CREATE TABLE IF NOT EXISTS "int_keys" (
    "id" SERIAL,
    "key" TEXT NOT NULL UNIQUE,
    PRIMARY KEY ("id"));

CREATE TABLE IF NOT EXISTS "int_transactions" (
    "id" SERIAL,
    "transaction_type" CHARACTER VARYING(32) NOT NULL,
    "key_id" SERIAL,
    "value" INTEGER,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("key_id") REFERENCES "int_keys" ("id") ON DELETE CASCADE);

CREATE TABLE IF NOT EXISTS "uint_keys" (
    "id" SERIAL,
    "key" TEXT NOT NULL UNIQUE,
    PRIMARY KEY ("id"));

CREATE TABLE IF NOT EXISTS "uint_transactions" (
    "id" SERIAL,
    "transaction_type" CHARACTER VARYING(32) NOT NULL,
    "key_id" SERIAL,
    "value" BIGINT,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("key_id") REFERENCES "uint_keys" ("id") ON DELETE CASCADE);

CREATE TABLE IF NOT EXISTS "float_keys" (
    "id" SERIAL,
    "key" TEXT NOT NULL UNIQUE,
    PRIMARY KEY ("id"));

CREATE TABLE IF NOT EXISTS "float_transactions" (
    "id" SERIAL,
    "transaction_type" CHARACTER VARYING(32) NOT NULL,
    "key_id" SERIAL,
    "value" REAL,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("key_id") REFERENCES "float_keys" ("id") ON DELETE CASCADE);

CREATE TABLE IF NOT EXISTS "string_keys" (
    "id" SERIAL,
    "key" TEXT NOT NULL UNIQUE,
    PRIMARY KEY ("id"));

CREATE TABLE IF NOT EXISTS "string_transactions" (
    "id" SERIAL,
    "transaction_type" CHARACTER VARYING(32) NOT NULL,
    "key_id" SERIAL,
    "value" TEXT,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("key_id") REFERENCES "string_keys" ("id") ON DELETE CASCADE);

CREATE TABLE IF NOT EXISTS "map_keys" (
    "id" SERIAL,
    "key" TEXT NOT NULL UNIQUE,
    PRIMARY KEY ("id"));

CREATE TABLE IF NOT EXISTS "map_transactions" (
    "id" SERIAL,
    "transaction_type" CHARACTER VARYING(32) NOT NULL,
    "key_id" SERIAL,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("key_id") REFERENCES "map_keys" ("id") ON DELETE CASCADE);

CREATE TABLE IF NOT EXISTS "map_key_value_pairs" (
    "transaction_id" SERIAL,
    "map_key_id" SERIAL,
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    FOREIGN KEY ("map_key_id") REFERENCES "map_keys" ("id"),
    FOREIGN KEY ("transaction_id") REFERENCES "map_transactions" ("id"));
