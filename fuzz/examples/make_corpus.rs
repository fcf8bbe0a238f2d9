//! Writes the seed corpus of every fuzz target (`fuzz/corpus/<target>/`)
//! from real encodings: `cargo run --example make_corpus` in `fuzz/`.
//! The files are small and checked in; rerun this after a format change.

use std::fs;
use std::path::Path;

use kvs_core::{Change, Key, Txn, ValueType};
use kvs_log::WriterMark;
use kvs_log::codec::{self, HEADER_LEN};
use kvs_proto::api::Transaction;
use prost::Message;

fn key(s: &str) -> Key {
    Key::parse(s).expect("seed key")
}

fn frame(txn: &Txn) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(txn, &mut out).expect("seed frame");
    out
}

/// The group frame of revision `revision` holding `txns`.
fn group_frame(revision: u64, txns: &[Txn]) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_group(revision, txns, &mut out).expect("seed group");
    out
}

fn mark_frame() -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_mark(
        &WriterMark {
            writer: key("w1"),
            sequence: 42,
        },
        1_700_000_000_000,
        &mut out,
    )
    .expect("seed mark");
    out
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("corpus file");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let txns = kvs_core::samples::every_kind();
    let names = [
        "put_int",
        "put_uint",
        "put_float",
        "put_str",
        "put_map",
        "put_set",
        "delete",
        "incr_by",
        "get",
    ];

    // log_record: frame payloads, one per kind of record.
    for (txn, name) in txns.iter().zip(names) {
        write(&root, "log_record", name, &frame(txn)[HEADER_LEN..]);
    }
    write(&root, "log_record", "mark", &mark_frame()[HEADER_LEN..]);
    write(
        &root,
        "log_record",
        "group",
        &group_frame(7, &txns)[HEADER_LEN..],
    );
    write(
        &root,
        "log_record",
        "group_head",
        &group_frame(9, &[])[HEADER_LEN..],
    );

    // log_file: a raw body of every record (records without a revision,
    // then groups, a head among them), the same torn, a corrupt one, and the
    // framed mode (see kvs_fuzz::log_input).
    let mut body: Vec<u8> = txns.iter().flat_map(frame).collect();
    body.extend(group_frame(20, &txns[..2]));
    body.extend(group_frame(30, &[]));
    body.extend(group_frame(21, &txns[2..]));
    body.extend(mark_frame());
    let raw = |flags: u8, body: &[u8]| [&[flags][..], body].concat();
    write(&root, "log_file", "raw_all", &raw(0, &body));
    write(
        &root,
        "log_file",
        "raw_torn",
        &raw(0, &body[..body.len() - 3]),
    );
    let mut corrupt = body.clone();
    corrupt[HEADER_LEN + 2] ^= 0xff;
    write(&root, "log_file", "raw_corrupt_truncate", &raw(1, &corrupt));
    let mut zeros = body.clone();
    zeros.extend([0u8; 24]);
    write(&root, "log_file", "raw_zero_tail", &raw(0, &zeros));
    let payloads: Vec<Vec<u8>> = txns
        .iter()
        .map(|t| frame(t)[HEADER_LEN..].to_vec())
        .chain([group_frame(5, &txns[..1])[HEADER_LEN..].to_vec()])
        .collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    write(
        &root,
        "log_file",
        "framed_all",
        &kvs_fuzz::framed_input(false, &refs, &[]),
    );
    write(
        &root,
        "log_file",
        "framed_torn",
        &kvs_fuzz::framed_input(true, &refs[..3], &[9, 1, 0]),
    );

    // rest_values: a type byte (the ValueType index) and a request body.
    let bodies: [(ValueType, &str, &[u8]); 10] = [
        (ValueType::Int, "int", b" -42\n"),
        (ValueType::Uint, "uint", b"4294967295"),
        (ValueType::Float, "float", b"-2e3"),
        (ValueType::Float, "float_small", b"1e-45"),
        (ValueType::Str, "str", "h\u{e9}llo\n".as_bytes()),
        (ValueType::Map, "map", br#"{"b":"2","a":"1","\u00e9":""}"#),
        (ValueType::Set, "set", br#"["b","a","b"]"#),
        (ValueType::Set, "set_empty", b"[]"),
        (ValueType::Map, "map_bad", br#"{"a":1}"#),
        (ValueType::Int, "int_bad", b"2147483648"),
    ];
    for (ty, name, body) in bodies {
        write(&root, "rest_values", name, &raw(ty.index() as u8, body));
    }

    // proto_txn: the wire form of every kind of transaction, with a
    // revision, plus the original service's data-less increment.
    for ((txn, name), revision) in txns.iter().zip(names).zip(1..) {
        let mut wire = Transaction::from(&Change::new(revision, txn.clone()));
        wire.timestamp = None;
        write(&root, "proto_txn", name, &wire.encode_to_vec());
    }
    let incr = Transaction {
        storage_type: 0,
        txn_type: 3,
        key: "c".into(),
        ..Transaction::default()
    };
    write(&root, "proto_txn", "incr_original", &incr.encode_to_vec());
    println!("wrote the seed corpus under {}", root.display());
}
