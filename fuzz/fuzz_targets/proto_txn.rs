//! Any bytes as a protobuf `Transaction` from a peer: decoding and
//! `Txn::try_from` answer a transaction or an error, never panic; a
//! transaction converts to the wire and back to itself (floats by bits).
#![no_main]

use kvs_core::Txn;
use kvs_proto::api::Transaction;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = Transaction::decode(data) else {
        return;
    };
    let Ok(txn) = Txn::try_from(wire) else {
        return;
    };
    let back = Transaction::from(&txn);
    let bytes = back.encode_to_vec();
    // (Not compared as messages: a NaN float is not equal to itself.)
    let decoded = Transaction::decode(bytes.as_slice()).expect("our own encoding decodes");
    let again = Txn::try_from(decoded)
        .unwrap_or_else(|e| panic!("{txn:?} went to the wire and came back refused: {e}"));
    assert_eq!(
        kvs_fuzz::txn_bytes(&txn),
        kvs_fuzz::txn_bytes(&again),
        "{txn:?} came back as {again:?}"
    );
});
