//! The KVS domain, shared by the servers, the log backends and the clients.
//!
//! - [`key`]: the key rules (`[0-9A-Za-z_]+`, 1 to 256 bytes), as a newtype.
//! - [`value`]: the six value types and their text and JSON forms.
//! - [`txn`]: the transactions that the log records and replay applies.
//! - [`change`]: revisions, and a transaction with the revision it has.
//! - [`error`]: an error and its causes as one sentence.
//! - `samples` (feature `samples`): one transaction of every kind, for
//!   tests and fuzz seeds.

pub mod change;
pub mod error;
pub mod key;
#[cfg(feature = "samples")]
pub mod samples;
pub mod txn;
pub mod value;

pub use change::{Change, Revisions};
pub use key::{Key, KeyError};
pub use txn::{PlainState, State, Txn};
pub use value::{Value, ValueError, ValueType};
