//! Any bytes as the payload of one log frame: `decode` answers an error or a
//! record, never panics; a record it answers encodes to a frame that decodes
//! to the same record (floats by bits), and that encoding is canonical.
#![no_main]

use kvs_core::{Txn, Value};
use kvs_log::codec::{self, HEADER_LEN, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    let Ok(record) = codec::decode(payload) else {
        return;
    };
    let frame = kvs_fuzz::record_bytes(&record);
    let again = codec::decode(&frame[HEADER_LEN..])
        .unwrap_or_else(|e| panic!("re-encoded {record:?} does not decode: {e}"));
    let frame_again = kvs_fuzz::record_bytes(&again);
    assert_eq!(
        frame, frame_again,
        "{record:?} changed on a round trip to {again:?}"
    );
    // PartialEq too, where it is defined (a NaN is not equal to itself).
    let nan = |t: &Txn| matches!(t, Txn::Put { value: Value::Float(f), .. } if f.is_nan());
    let has_nan = match &record {
        Record::Txn(t) => nan(t),
        Record::Group { txns, .. } => txns.iter().any(nan),
        Record::Mark(..) => false,
    };
    if !has_nan {
        assert_eq!(record, again);
    }
});
