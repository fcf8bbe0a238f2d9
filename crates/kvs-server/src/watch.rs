//! Watching the store: every durable revision with changes a watcher asks
//! for, in revision order, as Server-Sent Events (`GET /watch`).
//!
//! - [`history`]: the recent durable revisions' changes, which the
//!   committer and the start-up replay record and every watcher reads.
//! - [`event`]: what a watcher is told of a change.
//! - [`stream`]: the watchers, their cap, and the stream each is sent.

pub(crate) mod event;
pub(crate) mod history;
pub(crate) mod stream;

pub(crate) use history::{Bounds, Gone, History};
pub(crate) use stream::{Filter, Refused, Watchers};
