//! The PostgreSQL tables: a database the original service wrote replays,
//! and the tables stay near the live set.

use kvs_testkit::stack::Stack;
use reqwest::StatusCode;

/// The original service's tables, exactly as its README creates them
/// (note `timestamp`, not `insert_time`, in map_transactions).
pub const ORIGINAL_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS "int_keys" ("id" SERIAL, "key" TEXT NOT NULL UNIQUE, PRIMARY KEY("id"));
CREATE TABLE IF NOT EXISTS "int_transactions" (
    "id" SERIAL, "transaction_type" CHARACTER VARYING(32) NOT NULL, "key_id" SERIAL, "value" INTEGER,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(), PRIMARY KEY("id"),
    FOREIGN KEY("key_id") REFERENCES "int_keys"("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS "uint_keys" ("id" SERIAL, "key" TEXT NOT NULL UNIQUE, PRIMARY KEY("id"));
CREATE TABLE IF NOT EXISTS "uint_transactions" (
    "id" SERIAL, "transaction_type" CHARACTER VARYING(32) NOT NULL, "key_id" SERIAL, "value" BIGINT,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(), PRIMARY KEY("id"),
    FOREIGN KEY("key_id") REFERENCES "uint_keys"("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS "float_keys" ("id" SERIAL, "key" TEXT NOT NULL UNIQUE, PRIMARY KEY("id"));
CREATE TABLE IF NOT EXISTS "float_transactions" (
    "id" SERIAL, "transaction_type" CHARACTER VARYING(32) NOT NULL, "key_id" SERIAL, "value" REAL,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(), PRIMARY KEY("id"),
    FOREIGN KEY("key_id") REFERENCES "float_keys"("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS "string_keys" ("id" SERIAL, "key" TEXT NOT NULL UNIQUE, PRIMARY KEY("id"));
CREATE TABLE IF NOT EXISTS "string_transactions" (
    "id" SERIAL, "transaction_type" CHARACTER VARYING(32) NOT NULL, "key_id" SERIAL, "value" TEXT,
    "insert_time" TIMESTAMP NOT NULL DEFAULT NOW(), PRIMARY KEY("id"),
    FOREIGN KEY("key_id") REFERENCES "string_keys"("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS "map_keys" ("id" SERIAL, "key" TEXT NOT NULL UNIQUE, PRIMARY KEY("id"));
CREATE TABLE IF NOT EXISTS "map_transactions" (
    "id" SERIAL, "transaction_type" CHARACTER VARYING(32) NOT NULL, "key_id" SERIAL,
    "timestamp" TIMESTAMP NOT NULL DEFAULT NOW(), PRIMARY KEY("id"),
    FOREIGN KEY("key_id") REFERENCES "map_keys"("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS "map_key_value_pairs" (
    "transaction_id" SERIAL, "map_key_id" SERIAL, "key" TEXT NOT NULL, "value" TEXT NOT NULL,
    FOREIGN KEY("map_key_id") REFERENCES "map_keys"("id"),
    FOREIGN KEY("transaction_id") REFERENCES "map_transactions"("id"));
"#;

/// What the original service would have written: puts, increments, reads,
/// and a delete that removed the transactions before it.
const ORIGINAL_ROWS: &str = r#"
INSERT INTO int_keys (key) VALUES ('counter'), ('hits'), ('gone');
INSERT INTO int_transactions (transaction_type, key_id, value) VALUES
    ('TransactionPut', 1, 10), ('TransactionIncr', 1, NULL), ('TransactionIncrBy', 1, 5),
    ('TransactionGet', 1, NULL), ('TransactionIncr', 2, NULL), ('TransactionIncr', 2, NULL),
    ('TransactionDel', 3, NULL);
INSERT INTO uint_keys (key) VALUES ('big');
INSERT INTO uint_transactions (transaction_type, key_id, value) VALUES ('TransactionPut', 1, 4294967295);
INSERT INTO float_keys (key) VALUES ('pi');
INSERT INTO float_transactions (transaction_type, key_id, value) VALUES ('TransactionPut', 1, 3.25);
INSERT INTO string_keys (key) VALUES ('name');
INSERT INTO string_transactions (transaction_type, key_id, value) VALUES
    ('TransactionPut', 1, 'first'), ('TransactionPut', 1, 'second');
INSERT INTO map_keys (key) VALUES ('user');
INSERT INTO map_transactions (transaction_type, key_id) VALUES ('TransactionPut', 1), ('TransactionPut', 1);
INSERT INTO map_key_value_pairs (transaction_id, map_key_id, key, value) VALUES
    (1, 1, 'name', 'old'), (2, 1, 'name', 'ada'), (2, 1, 'lang', 'en');
"#;

#[tokio::test]
async fn a_database_written_by_the_original_service_replays() {
    let mut stack = Stack::database_only().await;
    stack.pg().sql(ORIGINAL_SCHEMA).await;
    stack.pg().sql(ORIGINAL_ROWS).await;
    stack.start_txn();
    stack.start_kvs(&[]).await;
    let base = stack.api();
    for (path, expected) in [
        ("/int/counter", "16"),
        ("/int/hits", "2"),
        ("/uint/big", "4294967295"),
        ("/float/pi", "3.25"),
        ("/str/name", "second"),
        ("/map/user", r#"{"lang":"en","name":"ada"}"#),
    ] {
        assert_eq!(
            base.get(path).await,
            (StatusCode::OK, expected.to_owned()),
            "{path}"
        );
    }
    assert_eq!(base.get("/int/gone").await.0, StatusCode::NOT_FOUND);
    // And it takes new writes, in the same tables.
    assert_eq!(base.put("/map/user/lang", "fr").await, StatusCode::OK);
    assert_eq!(base.put("/set/tags", r#"["a"]"#).await, StatusCode::OK);
    stack.start_kvs(&[]).await;
    assert_eq!(
        stack.api().get("/map/user").await.1,
        r#"{"lang":"fr","name":"ada"}"#
    );
    assert_eq!(stack.api().get("/set/tags").await.1, r#"["a"]"#);
}

#[tokio::test]
async fn the_tables_hold_about_the_live_set_after_many_overwrites_and_deletes() {
    let stack = Stack::postgres().await;
    let base = stack.api();
    for round in 0..50 {
        for k in 0..10 {
            assert_eq!(
                base.put(&format!("/str/s{k}"), &format!("v{round}")).await,
                StatusCode::OK
            );
            assert_eq!(
                base.put(
                    &format!("/map/m{k}"),
                    &format!(r#"{{"r":"{round}","k":"{k}"}}"#)
                )
                .await,
                StatusCode::OK
            );
            assert_eq!(
                base.put(&format!("/set/t{k}"), &format!(r#"["{round}","x"]"#))
                    .await,
                StatusCode::OK
            );
        }
        assert_eq!(
            base.put(&format!("/int/tmp{round}"), "1").await,
            StatusCode::OK
        );
        assert!(base.delete(&format!("/int/tmp{round}")).await);
    }
    // A member or field that comes and goes is one row and one entry, its
    // last change, beside the value's put.
    for round in 0..50 {
        assert_eq!(base.put("/set/t0/extra", "").await, StatusCode::OK);
        assert!(base.delete("/set/t0/extra").await);
        let field = format!("r{round}");
        assert_eq!(base.put("/map/m0/f", &field).await, StatusCode::OK);
    }
    let pg = stack.pg();
    assert_eq!(
        pg.count("SELECT count(*) FROM string_transactions").await,
        10
    );
    assert_eq!(pg.count("SELECT count(*) FROM map_transactions").await, 11);
    assert_eq!(
        pg.count("SELECT count(*) FROM map_key_value_pairs").await,
        21
    );
    assert_eq!(pg.count("SELECT count(*) FROM set_transactions").await, 11);
    assert_eq!(pg.count("SELECT count(*) FROM set_members").await, 21);
    assert_eq!(pg.count("SELECT count(*) FROM int_transactions").await, 0);
    assert_eq!(pg.count("SELECT count(*) FROM int_keys").await, 0);
    assert_eq!(base.get("/map/m3").await.1, r#"{"k":"3","r":"49"}"#);
    let mut stack = stack;
    stack.start_kvs(&[]).await;
    let base = stack.api();
    assert_eq!(
        base.get("/map/m0").await.1,
        r#"{"f":"r49","k":"0","r":"49"}"#
    );
    assert_eq!(base.get("/set/t0").await.1, r#"["49","x"]"#);
}
