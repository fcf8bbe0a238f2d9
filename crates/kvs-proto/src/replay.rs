//! How `ReadTransactions` ends, beyond the original contract.
//!
//! The stream carries only `Transaction`s, as the original service's clients
//! expect. txn-server ends a replay that went through the whole log with
//! status OK and trailers that say so: [`RECORDS`], the number of
//! transactions it sent, and [`SKIPPED`], the rows it left out because they
//! cannot be replayed, and [`HEAD`], the highest revision the log has
//! given (a delete compacted away leaves no record of its revision, so the
//! transactions alone cannot say). A client that ignores trailers sees an
//! ordinary end.
//! A replay that failed ends with an error status instead; one that ends OK
//! without [`RECORDS`] did not come from a txn-server that vouches for it,
//! and kvs-server refuses it.

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// Trailer: the transactions the stream carried.
pub const RECORDS: &str = "kvs-replay-records";
/// Trailer: the rows of the log left out because they cannot be replayed.
pub const SKIPPED: &str = "kvs-replay-skipped";
/// Trailer: the highest revision the log has given.
pub const HEAD: &str = "kvs-replay-head";

/// What the end of a complete replay says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayEnd {
    pub records: u64,
    pub skipped: u64,
    pub head: u64,
}

impl ReplayEnd {
    /// The last item of the stream: status OK with the trailers (tonic ends
    /// a response stream with the first status it yields).
    pub fn status(&self) -> Status {
        let mut trailers = MetadataMap::new();
        trailers.insert(RECORDS, MetadataValue::from(self.records));
        trailers.insert(SKIPPED, MetadataValue::from(self.skipped));
        trailers.insert(HEAD, MetadataValue::from(self.head));
        Status::with_metadata(Code::Ok, "", trailers)
    }

    /// Reads the trailers of a stream that ended OK; an error says what is
    /// missing or malformed.
    pub fn from_trailers(trailers: Option<&MetadataMap>) -> Result<ReplayEnd, String> {
        let number = |name: &str| -> Result<Option<u64>, String> {
            let Some(value) = trailers.and_then(|t| t.get(name)) else {
                return Ok(None);
            };
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("trailer {name} is not a count: {value:?}"))
        };
        let records = number(RECORDS)?.ok_or_else(|| format!("no {RECORDS} trailer"))?;
        // An absent count of skipped rows is none skipped.
        let skipped = number(SKIPPED)?.unwrap_or(0);
        // A txn-server from before revisions sends no head: none given.
        let head = number(HEAD)?.unwrap_or(0);
        Ok(ReplayEnd {
            records,
            skipped,
            head,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_status_is_ok_and_its_trailers_read_back() {
        let end = ReplayEnd {
            records: 12,
            skipped: 3,
            head: u64::MAX,
        };
        let status = end.status();
        assert_eq!(status.code(), Code::Ok);
        assert_eq!(ReplayEnd::from_trailers(Some(status.metadata())), Ok(end));
    }

    #[test]
    fn trailers_of_a_txn_server_from_before_revisions_have_head_zero() {
        let mut old = MetadataMap::new();
        old.insert(RECORDS, MetadataValue::from(5u64));
        old.insert(SKIPPED, MetadataValue::from(1u64));
        assert_eq!(
            ReplayEnd::from_trailers(Some(&old)),
            Ok(ReplayEnd {
                records: 5,
                skipped: 1,
                head: 0
            })
        );
        let mut garbled = old;
        garbled.insert(HEAD, MetadataValue::from_static("-1"));
        assert!(
            ReplayEnd::from_trailers(Some(&garbled))
                .unwrap_err()
                .contains(HEAD)
        );
    }

    #[test]
    fn trailers_without_the_count_are_refused() {
        assert_eq!(
            ReplayEnd::from_trailers(None),
            Err(format!("no {RECORDS} trailer"))
        );
        let mut other = MetadataMap::new();
        other.insert(SKIPPED, MetadataValue::from(1u64));
        assert!(ReplayEnd::from_trailers(Some(&other)).is_err());
        let mut garbled = MetadataMap::new();
        garbled.insert(RECORDS, MetadataValue::from_static("ten"));
        assert!(
            ReplayEnd::from_trailers(Some(&garbled))
                .unwrap_err()
                .contains("not a count")
        );
    }
}
