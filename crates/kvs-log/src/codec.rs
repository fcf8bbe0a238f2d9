//! The binary form of the file log's records (see `docs/file-log.md`): a
//! revision's transactions, a writer's progress, and the single transactions
//! of logs written before revisions.
//!
//! A frame is `len: u32 LE | crc32: u32 LE | payload`, where the checksum
//! covers the payload. Decoding trusts no length: every count is checked
//! against the bytes that remain before anything is allocated for it.
//!
//! A payload is self-delimiting: its own fields say how long it is. Recovery
//! leans on that ([`implied_len`]) to tell a frame cut short by a crash from
//! one whose length field is damaged, so every payload added later must keep
//! it (fixed-width fields, or a length before each variable one).

use kvs_core::value::{MapValue, SetValue};
use kvs_core::{Key, Txn, Value, ValueType};

use crate::WriterMark;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 8;
/// The smallest payload: op, type and key length.
pub const MIN_PAYLOAD_LEN: usize = 4;
/// The largest payload accepted; anything longer is corruption.
pub const MAX_PAYLOAD_LEN: usize = 64 << 20;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_INCR_BY: u8 = 3;
const OP_GET: u8 = 4;
const OP_MARK: u8 = 5;
/// A set member added, or a map field set.
const OP_PUT_ENTRY: u8 = 6;
/// A set member or map field removed.
const OP_DEL_ENTRY: u8 = 7;
/// A writer's progress and when it was logged; [`OP_MARK`] had no time.
const OP_MARK_AT: u8 = 8;
/// The transactions of one revision, each a payload of the other ops.
const OP_GROUP: u8 = 9;
/// A key's expiry time: `at_ms: u64 LE` after the key, 0 for never.
const OP_EXPIRY: u8 = 10;
/// A key that expired, and is gone.
const OP_EXPIRE: u8 = 11;
/// The revision a key was created at: `revision: u64 LE` after the key.
const OP_CREATED: u8 = 12;
/// The highest operation code.
const OP_LAST: u8 = OP_CREATED;

/// One record of the file: a transaction without a revision (written
/// before revisions), the transactions of one revision (none: the log has
/// given revisions up to this one), or a writer's progress with the time it
/// was logged, in milliseconds since the Unix epoch (0 in a mark written
/// before marks had a time), by which idle writers are forgotten.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Txn(Txn),
    Group { revision: u64, txns: Vec<Txn> },
    Mark(WriterMark, u64),
}

/// Why a payload whose checksum matched still is not a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record ends early")]
    Short,
    #[error("unknown operation {0}")]
    BadOp(u8),
    #[error("unknown value type {0}")]
    BadType(u8),
    #[error("bad key: {0}")]
    BadKey(String),
    #[error("text is not UTF-8")]
    NotUtf8,
    #[error("{0} bytes left over after the record")]
    Trailing(usize),
    #[error("increment of a {0} key")]
    IncrNotInt(ValueType),
    #[error("member or field change of a {0} key")]
    EntryOf(ValueType),
    #[error("operation {0} inside a revision's group")]
    NotInGroup(u8),
}

/// Appends the frame of `txn`, a transaction without a revision, to `out`.
/// Fails only when the payload would be longer than [`MAX_PAYLOAD_LEN`].
pub fn encode(txn: &Txn, out: &mut Vec<u8>) -> Result<(), usize> {
    frame(out, |out| encode_txn(txn, out))
}

/// Appends the one frame of `revision`'s transactions to `out` (with none,
/// a record that the log has given revisions up to `revision`). Fails only
/// when the payload would be longer than [`MAX_PAYLOAD_LEN`].
pub fn encode_group<'a>(
    revision: u64,
    txns: impl IntoIterator<Item = &'a Txn>,
    out: &mut Vec<u8>,
) -> Result<(), usize> {
    frame(out, |out| {
        out.push(OP_GROUP);
        out.extend_from_slice(&revision.to_le_bytes());
        let count_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut count = 0u32;
        for txn in txns {
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            encode_txn(txn, out);
            let len = (out.len() - len_at - 4) as u32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            count += 1;
        }
        out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    })
}

/// Appends the frame of a writer's mark, logged at `at_ms`, to `out`.
pub fn encode_mark(mark: &WriterMark, at_ms: u64, out: &mut Vec<u8>) -> Result<(), usize> {
    frame(out, |out| {
        out.push(OP_MARK_AT);
        out.push(0);
        let id = mark.writer.as_str().as_bytes();
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&mark.sequence.to_le_bytes());
        out.extend_from_slice(&at_ms.to_le_bytes());
    })
}

/// Writes a header, the payload `body` writes, then fills the header in.
fn frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) -> Result<(), usize> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    body(out);
    let len = out.len() - start - HEADER_LEN;
    if len > MAX_PAYLOAD_LEN {
        out.truncate(start);
        return Err(len);
    }
    let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn encode_txn(txn: &Txn, out: &mut Vec<u8>) {
    let (op, ty) = match txn {
        Txn::Put { value, .. } => (OP_PUT, value.value_type()),
        Txn::Delete { ty, .. } => (OP_DELETE, *ty),
        Txn::IncrBy { .. } => (OP_INCR_BY, ValueType::Int),
        Txn::Get { ty, .. } => (OP_GET, *ty),
        Txn::SetMember { present, .. } => (entry_op(*present), ValueType::Set),
        Txn::MapField { value, .. } => (entry_op(value.is_some()), ValueType::Map),
        Txn::Expiry { ty, .. } => (OP_EXPIRY, *ty),
        Txn::Expire { ty, .. } => (OP_EXPIRE, *ty),
        Txn::Created { ty, .. } => (OP_CREATED, *ty),
    };
    out.push(op);
    out.push(ty.index() as u8);
    let key = txn.key().as_str().as_bytes();
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    match txn {
        Txn::Put { value, .. } => encode_value(value, out),
        Txn::IncrBy { by, .. } => out.extend_from_slice(&by.to_le_bytes()),
        Txn::Delete { .. } | Txn::Get { .. } | Txn::Expire { .. } => {}
        Txn::Expiry { at_ms, .. } => out.extend_from_slice(&at_ms.unwrap_or(0).to_le_bytes()),
        Txn::Created { revision, .. } => out.extend_from_slice(&revision.to_le_bytes()),
        Txn::SetMember { member, .. } => put_bytes(member.as_bytes(), out),
        Txn::MapField { field, value, .. } => {
            put_bytes(field.as_bytes(), out);
            if let Some(v) = value {
                put_bytes(v.as_bytes(), out);
            }
        }
    }
}

fn entry_op(present: bool) -> u8 {
    if present { OP_PUT_ENTRY } else { OP_DEL_ENTRY }
}

fn put_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Int(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Uint(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Float(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
        Value::Str(s) => put_bytes(s.as_bytes(), out),
        Value::Map(m) => {
            out.extend_from_slice(&(m.len() as u32).to_le_bytes());
            for (k, v) in m {
                put_bytes(k.as_bytes(), out);
                put_bytes(v.as_bytes(), out);
            }
        }
        Value::Set(s) => {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            for m in s {
                put_bytes(m.as_bytes(), out);
            }
        }
    }
}

/// The checksum a header must carry for `payload`.
pub fn checksum(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

/// Reads the payload of one frame back into a record.
pub fn decode(payload: &[u8]) -> Result<Record, DecodeError> {
    if payload.first() != Some(&OP_GROUP) {
        return decode_single(payload);
    }
    let mut r = Reader(&payload[1..]);
    let revision = u64::from_le_bytes(r.array()?);
    // Each transaction takes at least its length and the smallest payload.
    let count = r.count(4 + MIN_PAYLOAD_LEN)?;
    let mut txns = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u32()? as usize;
        let inner = r.take(len)?;
        match decode_single(inner)? {
            Record::Txn(t) => txns.push(t),
            // A mark: it decoded, so it has an op.
            _ => return Err(DecodeError::NotInGroup(inner[0])),
        }
    }
    match r.0.len() {
        0 => Ok(Record::Group { revision, txns }),
        n => Err(DecodeError::Trailing(n)),
    }
}

/// A payload of any op but a group.
fn decode_single(payload: &[u8]) -> Result<Record, DecodeError> {
    let mut r = Reader(payload);
    let op = r.u8()?;
    let ty_byte = r.u8()?;
    let ty = ValueType::from_index(ty_byte as usize).ok_or(DecodeError::BadType(ty_byte))?;
    let key_len = u16::from_le_bytes(r.array()?) as usize;
    let key = std::str::from_utf8(r.take(key_len)?).map_err(|_| DecodeError::NotUtf8)?;
    let key = Key::parse(key).map_err(|e| DecodeError::BadKey(e.to_string()))?;
    let record = match op {
        OP_MARK | OP_MARK_AT => {
            let mark = WriterMark {
                writer: key,
                sequence: u64::from_le_bytes(r.array()?),
            };
            let at_ms = if op == OP_MARK_AT {
                u64::from_le_bytes(r.array()?)
            } else {
                0
            };
            Record::Mark(mark, at_ms)
        }
        OP_PUT => Record::Txn(Txn::Put {
            key,
            value: r.value(ty)?,
        }),
        OP_DELETE => Record::Txn(Txn::Delete { ty, key }),
        OP_GET => Record::Txn(Txn::Get { ty, key }),
        OP_EXPIRY => Record::Txn(Txn::Expiry {
            ty,
            key,
            at_ms: Some(u64::from_le_bytes(r.array()?)).filter(|&at| at != 0),
        }),
        OP_EXPIRE => Record::Txn(Txn::Expire { ty, key }),
        OP_CREATED => Record::Txn(Txn::Created {
            ty,
            key,
            revision: u64::from_le_bytes(r.array()?),
        }),
        OP_INCR_BY if ty == ValueType::Int => Record::Txn(Txn::IncrBy {
            key,
            by: i32::from_le_bytes(r.array()?),
        }),
        OP_INCR_BY => return Err(DecodeError::IncrNotInt(ty)),
        OP_PUT_ENTRY | OP_DEL_ENTRY => {
            let present = op == OP_PUT_ENTRY;
            Record::Txn(match ty {
                ValueType::Set => Txn::SetMember {
                    key,
                    member: r.string()?,
                    present,
                },
                ValueType::Map => Txn::MapField {
                    key,
                    field: r.string()?,
                    value: if present { Some(r.string()?) } else { None },
                },
                other => return Err(DecodeError::EntryOf(other)),
            })
        }
        other => return Err(DecodeError::BadOp(other)),
    };
    match r.0.len() {
        0 => Ok(record),
        n => Err(DecodeError::Trailing(n)),
    }
}

/// How long the payload that starts with `prefix` says it is, reading only
/// its structure (op, type, and the lengths and counts of its fields):
/// `Ok(Some(n))` once the prefix shows it, `Ok(None)` when the prefix ends
/// first, an error when the bytes cannot begin any payload. `n` may be more
/// than the prefix holds: a field's contents need not be there to be skipped.
pub fn implied_len(prefix: &[u8]) -> Result<Option<usize>, DecodeError> {
    let mut w = Walk {
        bytes: prefix,
        at: 0,
    };
    let Some(op) = w.u8() else { return Ok(None) };
    if !(OP_PUT..=OP_LAST).contains(&op) {
        return Err(DecodeError::BadOp(op));
    }
    if op == OP_GROUP {
        // The revision, then a count of transactions, each after its length.
        w.skip(8);
        return Ok(w.items(1).map(|()| w.at));
    }
    let Some(ty_byte) = w.u8() else {
        return Ok(None);
    };
    let ty = ValueType::from_index(ty_byte as usize).ok_or(DecodeError::BadType(ty_byte))?;
    if op == OP_INCR_BY && ty != ValueType::Int {
        return Err(DecodeError::IncrNotInt(ty));
    }
    let entry = matches!(op, OP_PUT_ENTRY | OP_DEL_ENTRY);
    if entry && !matches!(ty, ValueType::Set | ValueType::Map) {
        return Err(DecodeError::EntryOf(ty));
    }
    let Some(key_len) = w.u16() else {
        return Ok(None);
    };
    if key_len == 0 || key_len > kvs_core::key::MAX_KEY_LEN {
        return Err(DecodeError::BadKey(format!("key length {key_len}")));
    }
    w.skip(key_len);
    let body_done = match op {
        OP_PUT => match ty {
            ValueType::Int | ValueType::Uint | ValueType::Float => w.skip(4),
            ValueType::Str => w.field(),
            ValueType::Map => w.items(2),
            ValueType::Set => w.items(1),
        },
        OP_INCR_BY => w.skip(4),
        OP_MARK | OP_EXPIRY | OP_CREATED => w.skip(8),
        OP_MARK_AT => w.skip(16),
        OP_PUT_ENTRY if ty == ValueType::Map => w.field().and_then(|()| w.field()),
        OP_PUT_ENTRY | OP_DEL_ENTRY => w.field(),
        _ => Some(()),
    };
    Ok(body_done.map(|()| w.at))
}

/// A walk over a payload's structure that may run past the bytes it has:
/// each read answers `None` when its bytes are not there.
struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Walk<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.bytes.get(self.at..self.at.checked_add(N)?)?;
        self.at += N;
        Some(b.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<usize> {
        self.take().map(|b| u16::from_le_bytes(b) as usize)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.at = self.at.saturating_add(n);
        Some(())
    }

    /// A `len:u32` and that many bytes.
    fn field(&mut self) -> Option<()> {
        let len = u32::from_le_bytes(self.take()?) as usize;
        self.skip(len)
    }

    /// A `count:u32` and that many items of `fields` fields each. Every item
    /// reads at least one length that must be there, so a damaged count
    /// ends the walk when the bytes do.
    fn items(&mut self, fields: usize) -> Option<()> {
        let count = u32::from_le_bytes(self.take()?);
        for _ in 0..count {
            for _ in 0..fields {
                self.field()?;
            }
        }
        Some(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8)
    }

    /// Reads a count of items that take at least `min_item` bytes each,
    /// refusing counts the remaining bytes cannot hold.
    fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.0.len() {
            return Err(DecodeError::Short);
        }
        Ok(n)
    }

    fn value(&mut self, ty: ValueType) -> Result<Value, DecodeError> {
        Ok(match ty {
            ValueType::Int => Value::Int(i32::from_le_bytes(self.array()?)),
            ValueType::Uint => Value::Uint(self.u32()?),
            ValueType::Float => Value::Float(f32::from_bits(self.u32()?)),
            ValueType::Str => Value::Str(self.string()?),
            ValueType::Map => {
                let n = self.count(8)?;
                let mut m = MapValue::new();
                for _ in 0..n {
                    let k = self.string()?;
                    m.insert(k, self.string()?);
                }
                Value::Map(m)
            }
            ValueType::Set => {
                let n = self.count(4)?;
                let mut s = SetValue::new();
                for _ in 0..n {
                    s.insert(self.string()?);
                }
                Value::Set(s)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use kvs_core::samples::every_kind as samples;

    use super::*;

    fn encode_record(record: &Record, out: &mut Vec<u8>) {
        match record {
            Record::Txn(t) => encode(t, out),
            Record::Group { revision, txns } => encode_group(*revision, txns, out),
            Record::Mark(m, at_ms) => encode_mark(m, *at_ms, out),
        }
        .unwrap();
    }

    /// Groups of one, of every kind, and of none (a head).
    fn groups() -> Vec<Record> {
        let mut groups: Vec<Record> = samples()
            .into_iter()
            .map(|t| Record::Group {
                revision: 3,
                txns: vec![t],
            })
            .collect();
        groups.push(Record::Group {
            revision: u64::MAX,
            txns: samples(),
        });
        groups.push(Record::Group {
            revision: 1,
            txns: Vec::new(),
        });
        groups
    }

    #[test]
    fn groups_of_a_revisions_transactions_round_trip() {
        for group in groups() {
            let mut buf = Vec::new();
            encode_record(&group, &mut buf);
            assert_eq!(decode(&buf[HEADER_LEN..]).unwrap(), group);
            let payload = &buf[HEADER_LEN..];
            for cut in 0..payload.len() {
                assert!(decode(&payload[..cut]).is_err(), "{group:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_group_holds_transactions_only_and_counts_no_more_than_its_bytes() {
        let mut mark = Vec::new();
        let w = WriterMark {
            writer: Key::parse("w").unwrap(),
            sequence: 1,
        };
        encode_mark(&w, 0, &mut mark).unwrap();
        let mut payload = vec![OP_GROUP];
        payload.extend_from_slice(&7u64.to_le_bytes());
        payload.extend_from_slice(&1u32.to_le_bytes());
        payload.extend_from_slice(&((mark.len() - HEADER_LEN) as u32).to_le_bytes());
        payload.extend_from_slice(&mark[HEADER_LEN..]);
        assert_eq!(decode(&payload), Err(DecodeError::NotInGroup(OP_MARK_AT)));
        let mut huge = vec![OP_GROUP];
        huge.extend_from_slice(&7u64.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), Err(DecodeError::Short));
    }

    #[test]
    fn every_kind_of_transaction_round_trips() {
        for txn in samples() {
            let mut buf = Vec::new();
            encode(&txn, &mut buf).unwrap();
            let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
            assert_eq!(len, buf.len() - HEADER_LEN);
            assert_eq!(
                u32::from_le_bytes(buf[4..8].try_into().unwrap()),
                checksum(&buf[8..])
            );
            assert_eq!(decode(&buf[HEADER_LEN..]).unwrap(), Record::Txn(txn));
        }
    }

    #[test]
    fn writer_marks_round_trip() {
        let mark = WriterMark {
            writer: Key::parse("w1").unwrap(),
            sequence: u64::MAX - 1,
        };
        let mut buf = Vec::new();
        encode_mark(&mark, 1_700_000_000_000, &mut buf).unwrap();
        assert_eq!(
            decode(&buf[HEADER_LEN..]).unwrap(),
            Record::Mark(mark.clone(), 1_700_000_000_000)
        );
        // A mark written before marks had a time has none.
        let mut old = vec![OP_MARK, 0, 2, 0, b'w', b'1'];
        old.extend_from_slice(&mark.sequence.to_le_bytes());
        assert_eq!(implied_len(&old), Ok(Some(old.len())));
        assert_eq!(decode(&old).unwrap(), Record::Mark(mark, 0));
    }

    #[test]
    fn every_truncation_of_a_payload_is_an_error() {
        for txn in samples() {
            let mut buf = Vec::new();
            encode(&txn, &mut buf).unwrap();
            let payload = &buf[HEADER_LEN..];
            for cut in 0..payload.len() {
                assert!(decode(&payload[..cut]).is_err(), "{txn:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_payload_says_its_own_length_from_its_first_bytes() {
        let mut all = samples().into_iter().map(Record::Txn).collect::<Vec<_>>();
        all.extend(groups());
        all.push(Record::Mark(
            WriterMark {
                writer: Key::parse("w1").unwrap(),
                sequence: 7,
            },
            9,
        ));
        for record in all {
            let mut buf = Vec::new();
            encode_record(&record, &mut buf);
            let payload = &buf[HEADER_LEN..];
            assert_eq!(implied_len(payload), Ok(Some(payload.len())), "{record:?}");
            let mut known = false;
            for cut in 0..payload.len() {
                match implied_len(&payload[..cut]) {
                    Ok(Some(n)) => {
                        assert_eq!(n, payload.len(), "{record:?} cut at {cut}");
                        known = true;
                    }
                    Ok(None) => assert!(!known, "{record:?} forgot its length at {cut}"),
                    Err(e) => panic!("{record:?} cut at {cut}: {e}"),
                }
            }
        }
        assert_eq!(implied_len(&[0]), Err(DecodeError::BadOp(0)));
        assert_eq!(implied_len(&[1, 9]), Err(DecodeError::BadType(9)));
        assert!(implied_len(&[1, 0, 0, 0]).is_err(), "an empty key");
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        let mut payload = vec![OP_PUT, ValueType::Set.index() as u8, 1, 0, b'k'];
        payload.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&payload), Err(DecodeError::Short));
    }

    #[test]
    fn trailing_bytes_and_unknown_codes_are_errors() {
        let mut buf = Vec::new();
        encode(&samples()[0], &mut buf).unwrap();
        let mut payload = buf[HEADER_LEN..].to_vec();
        payload.push(0);
        assert_eq!(decode(&payload), Err(DecodeError::Trailing(1)));
        let unknown = OP_LAST + 1;
        assert_eq!(
            decode(&[unknown, 0, 1, 0, b'k']),
            Err(DecodeError::BadOp(unknown))
        );
        assert_eq!(decode(&[1, 6, 1, 0, b'k']), Err(DecodeError::BadType(6)));
        let str_entry = [OP_DEL_ENTRY, ValueType::Str.index() as u8, 1, 0, b'k'];
        assert_eq!(
            decode(&str_entry),
            Err(DecodeError::EntryOf(ValueType::Str))
        );
        assert_eq!(
            implied_len(&str_entry),
            Err(DecodeError::EntryOf(ValueType::Str))
        );
    }
}
