//! What the fuzz targets share: comparing transactions bit for bit, and
//! turning a fuzzer's bytes into a log file body.

use kvs_core::{Change, Txn};
use kvs_log::codec::{self, Record};
use kvs_log::file::MAGIC;

/// The log encoding of a record: two records are the same, floats compared
/// by their bits (NaN included), exactly when these bytes are equal.
pub fn record_bytes(record: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    match record {
        Record::Txn(t) => codec::encode(t, &mut out),
        Record::Group { revision, txns } => codec::encode_group(*revision, txns, &mut out),
        Record::Mark(m, at_ms) => codec::encode_mark(m, *at_ms, &mut out),
    }
    .expect("a record decoded from a fuzz input fits in a frame");
    out
}

/// [`record_bytes`] of a transaction.
pub fn txn_bytes(txn: &Txn) -> Vec<u8> {
    record_bytes(&Record::Txn(txn.clone()))
}

/// [`record_bytes`] of a change: its revision's group of it alone.
pub fn change_bytes(change: &Change) -> Vec<u8> {
    record_bytes(&Record::Group {
        revision: change.revision,
        txns: vec![change.txn.clone()],
    })
}

/// A log file made of fuzz input, and how to open it.
pub struct LogInput {
    pub truncate_corrupt: bool,
    /// The whole file: the header, then the body.
    pub file: Vec<u8>,
}

/// The first byte of a `log_file` input holds flags: bit 0 opens the log with
/// `truncate_corrupt`; bit 1 chooses framed mode. In raw mode the rest is the
/// body as it is. In framed mode the rest is read as `len:u8 payload[len]`
/// pieces, each written as a frame with a correct length and checksum (so
/// that the fuzzer reaches the decoder through the file), and a last piece
/// shorter than its length byte says is written as it is (a torn tail).
pub fn log_input(data: &[u8]) -> LogInput {
    let (flags, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let mut file = MAGIC.to_vec();
    if flags & 2 == 0 {
        file.extend_from_slice(rest);
    } else {
        let mut rest = rest;
        while let Some((&len, tail)) = rest.split_first() {
            let len = len as usize;
            if tail.len() < len {
                file.extend_from_slice(rest);
                break;
            }
            let (payload, tail) = tail.split_at(len);
            file.extend_from_slice(&(len as u32).to_le_bytes());
            file.extend_from_slice(&codec::checksum(payload).to_le_bytes());
            file.extend_from_slice(payload);
            rest = tail;
        }
    }
    LogInput {
        truncate_corrupt: flags & 1 == 1,
        file,
    }
}

/// The framed-mode input (see [`log_input`]) that writes these payloads.
pub fn framed_input(truncate_corrupt: bool, payloads: &[&[u8]], torn: &[u8]) -> Vec<u8> {
    let mut out = vec![2 | u8::from(truncate_corrupt)];
    for p in payloads {
        out.push(u8::try_from(p.len()).expect("a seed payload under 256 bytes"));
        out.extend_from_slice(p);
    }
    out.extend_from_slice(torn);
    out
}
