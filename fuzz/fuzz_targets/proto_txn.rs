//! Any bytes as a protobuf `Transaction` from a peer: decoding and
//! `Change::try_from` answer a change or an error, never panic; a change
//! converts to the wire and back to itself, revision included (floats by
//! bits).
#![no_main]

use kvs_core::Change;
use kvs_proto::api::Transaction;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = Transaction::decode(data) else {
        return;
    };
    let Ok(change) = Change::try_from(wire) else {
        return;
    };
    let back = Transaction::from(&change);
    let bytes = back.encode_to_vec();
    // (Not compared as messages: a NaN float is not equal to itself.)
    let decoded = Transaction::decode(bytes.as_slice()).expect("our own encoding decodes");
    let again = Change::try_from(decoded)
        .unwrap_or_else(|e| panic!("{change:?} went to the wire and came back refused: {e}"));
    assert_eq!(
        kvs_fuzz::change_bytes(&change),
        kvs_fuzz::change_bytes(&again),
        "{change:?} came back as {again:?}"
    );
});
