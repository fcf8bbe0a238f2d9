//! `GET /watch`: the store's durable changes as a stream of [`Event`]s,
//! one per revision, that resumes by itself after a dropped connection.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt, stream};
use kvs_core::{Value, ValueType};
use reqwest::StatusCode;
use serde_json::Value as Json;

use crate::{Client, Error, Result};

/// How long a watch waits for anything from the server, a heartbeat
/// included (it sends one every 15 seconds by default), before it takes the
/// connection for dead and resumes on a new one.
pub const WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The wait before the first reconnection; it doubles with each failed
/// attempt in a row, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The request timeout of a watch, in place of the client's: a watch lasts
/// as long as it is read, and a silent connection is caught by
/// [`WATCH_IDLE_TIMEOUT`] instead.
const STREAM_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// What EventSource sends on reconnecting: the id of the last event it got.
const LAST_EVENT_ID: &str = "last-event-id";
/// The store's revision an answer reflects.
const REVISION: &str = "kvs-revision";

/// Which changes a watch reports, and from which revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchFilter {
    ty: Option<ValueType>,
    prefix: Option<String>,
    since: Option<u64>,
}

impl WatchFilter {
    /// Every change, from now on.
    pub fn new() -> WatchFilter {
        WatchFilter::default()
    }

    /// Only changes to keys of type `ty` (default: every type).
    pub fn value_type(mut self, ty: ValueType) -> WatchFilter {
        self.ty = Some(ty);
        self
    }

    /// Only changes to keys that start with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> WatchFilter {
        self.prefix = Some(prefix.into());
        self
    }

    /// The changes after revision `since` (default: those after the
    /// store's revision when the watch starts). A revision older than the
    /// server's history ends the watch with [`Error::Compacted`].
    pub fn since(mut self, since: u64) -> WatchFilter {
        self.since = Some(since);
        self
    }
}

/// The changes of one revision that match a watch's filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The revision of every change here.
    pub revision: u64,
    /// One change, or several for a revision that changed several keys (a
    /// transaction, or a delete across types).
    pub changes: Vec<Change>,
}

/// One change to one key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// The key holds a new value.
    Put {
        /// The key.
        key: String,
        /// The value, whose type is the key's namespace.
        value: Value,
    },
    /// The key of type `ty` was deleted.
    Delete {
        /// The namespace.
        ty: ValueType,
        /// The key.
        key: String,
    },
    /// A member was added to a set (`present`) or removed from it.
    Member {
        /// The set key.
        key: String,
        /// The member.
        member: String,
        /// Whether the member is in the set now.
        present: bool,
    },
    /// A map field was set, or removed (`value` is `None`).
    Field {
        /// The map key.
        key: String,
        /// The field.
        field: String,
        /// The field's value now.
        value: Option<String>,
    },
    /// The key of type `ty` reached the end of its TTL and is gone.
    Expire {
        /// The namespace.
        ty: ValueType,
        /// The key.
        key: String,
    },
}

impl Change {
    /// The change of kind `kind` (an SSE event name) that `data` describes.
    fn parse(kind: &str, data: &Json) -> Result<Change> {
        let bad = |why: &str| Error::Decode(format!("a watch's {kind} event {why}: {data}"));
        let text = |name: &str| {
            data.get(name)
                .and_then(Json::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(&format!("lacks {name}")))
        };
        let ty = || -> Result<ValueType> {
            text("type")?
                .parse()
                .map_err(|_| bad("names an unknown type"))
        };
        let key = text("key")?;
        Ok(match kind {
            "put" => {
                let ty = ty()?;
                let value = data.get("value").ok_or_else(|| bad("lacks value"))?;
                let value = Value::from_json(ty, value).map_err(|e| bad(&e.to_string()))?;
                Change::Put { key, value }
            }
            "delete" => Change::Delete { ty: ty()?, key },
            "member" => Change::Member {
                member: text("member")?,
                present: data
                    .get("present")
                    .and_then(Json::as_bool)
                    .ok_or_else(|| bad("lacks present"))?,
                key,
            },
            "field" => Change::Field {
                field: text("field")?,
                value: match data.get("value") {
                    Some(Json::String(v)) => Some(v.clone()),
                    Some(Json::Null) | None => None,
                    Some(_) => return Err(bad("has a value that is not a string")),
                },
                key,
            },
            "expire" => Change::Expire { ty: ty()?, key },
            _ => return Err(bad("is of a kind this client does not know")),
        })
    }

    /// The key changed.
    pub fn key(&self) -> &str {
        match self {
            Change::Put { key, .. }
            | Change::Delete { key, .. }
            | Change::Member { key, .. }
            | Change::Field { key, .. }
            | Change::Expire { key, .. } => key,
        }
    }
}

impl Event {
    /// The event that an SSE event of `kind` with `data` is.
    fn parse(revision: u64, kind: &str, data: &str) -> Result<Event> {
        let data: Json = serde_json::from_str(data)
            .map_err(|e| Error::Decode(format!("a watch event's data is not JSON ({e})")))?;
        let changes = if kind == "changes" {
            data.get("changes")
                .and_then(Json::as_array)
                .ok_or_else(|| Error::Decode(format!("a changes event lacks changes: {data}")))?
                .iter()
                .map(|change| {
                    let kind = change.get("kind").and_then(Json::as_str).unwrap_or("");
                    Change::parse(kind, change)
                })
                .collect::<Result<_>>()?
        } else {
            vec![Change::parse(kind, &data)?]
        };
        Ok(Event { revision, changes })
    }
}

type Sse = Pin<
    Box<
        dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<reqwest::Error>>>
            + Send,
    >,
>;

/// A watch's state between two events.
struct Watcher {
    client: Client,
    filter: WatchFilter,
    /// The revision of the last event given (or the watch's `since`): the
    /// point to resume after.
    last: Option<u64>,
    /// Where to resume when no event came yet on a watch from "now": the
    /// store's revision its first answer reflected.
    start: Option<u64>,
    conn: Option<Sse>,
    /// Whether a connection was ever made: until then, failures are
    /// reported rather than retried.
    connected: bool,
    /// Failed or dropped connections since the last event.
    failures: u32,
    done: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<Event>> {
        while !self.done {
            let Some(conn) = self.conn.as_mut() else {
                if self.failures > 0 {
                    tokio::time::sleep(backoff(self.failures)).await;
                }
                match self.connect().await {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        self.connected = true;
                    }
                    Err(e) if self.connected && retried(&e) => self.failures += 1,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                continue;
            };
            match tokio::time::timeout(WATCH_IDLE_TIMEOUT, conn.next()).await {
                // The server's `error` event ends a stream it gave up on (a
                // watcher too slow to keep up): resume on a new one.
                Ok(Some(Ok(sse))) if sse.event != "error" => {
                    if let Some(event) = self.event(&sse) {
                        self.failures = 0;
                        return Some(event);
                    }
                }
                _ => {
                    self.conn = None;
                    self.failures += 1;
                }
            }
        }
        None
    }

    /// The event `sse` is, unless it was given already.
    fn event(&mut self, sse: &eventsource_stream::Event) -> Option<Result<Event>> {
        let Ok(revision) = sse.id.trim().parse::<u64>() else {
            return Some(Err(Error::Decode(format!(
                "a watch event's id must be its revision, got {:?}",
                sse.id
            ))));
        };
        if self.last.is_some_and(|last| revision <= last) {
            return None;
        }
        self.last = Some(revision);
        Some(Event::parse(revision, &sse.event, &sse.data))
    }

    async fn connect(&mut self) -> Result<Sse> {
        let mut url = self.client.url(&["watch"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(ty) = self.filter.ty {
                query.append_pair("type", ty.name());
            }
            if let Some(prefix) = &self.filter.prefix {
                query.append_pair("prefix", prefix);
            }
        }
        let mut req = self.client.http.get(url).timeout(STREAM_TIMEOUT);
        if let Some(after) = self.last.or(self.start) {
            req = req.header(LAST_EVENT_ID, after.to_string());
        }
        let resp = self.client.send(req).await?;
        if self.last.is_none() && self.start.is_none() {
            self.start = resp
                .headers()
                .get(REVISION)
                .and_then(|v| v.to_str().ok()?.parse().ok());
        }
        Ok(Box::pin(resp.bytes_stream().eventsource()))
    }
}

/// Whether a failure to reconnect is worth another attempt: the server is
/// away (restarting, replaying its log, full of watchers), not refusing.
fn retried(e: &Error) -> bool {
    match e {
        Error::Transport(_) | Error::OutcomeUnknown { .. } => true,
        Error::Status { status, .. } => {
            *status == StatusCode::SERVICE_UNAVAILABLE.as_u16()
                || *status == StatusCode::BAD_GATEWAY.as_u16()
        }
        _ => false,
    }
}

/// The wait before attempt `failures` + 1.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

impl Client {
    /// `GET /watch`: the changes that match `filter`, one [`Event`] per
    /// revision, in revision order, each once the server has made it
    /// durable.
    ///
    /// The stream resumes by itself: when the connection drops or goes
    /// silent for [`WATCH_IDLE_TIMEOUT`], it reconnects (waiting 0.1 s,
    /// then twice as long after each failed attempt, up to 5 s) with
    /// `Last-Event-ID` set to the last revision it gave, so that no event
    /// is missed and none comes twice. It keeps trying while the server is
    /// away (unreachable, or answering 503 while it restarts); other
    /// failures end it after one last item: the first connection's failure,
    /// a refusal (401, 403, 404 for an unknown type), and
    /// [`Error::Compacted`] when the revision to resume from is older than
    /// the server's history. An event this client cannot read (of a kind
    /// it does not know, say) is an [`Error::Decode`] item, and the stream
    /// goes on.
    ///
    /// Nothing is sent until the stream is first polled: a watch from now
    /// on (no [`WatchFilter::since`]) starts from the store's revision at
    /// that moment, and if it drops before its first event, resumes from
    /// the revision its first answer reflected.
    ///
    /// ```no_run
    /// # async fn run(kvs: kvs_client::Client) -> Result<(), kvs_client::Error> {
    /// use futures_util::StreamExt;
    /// use kvs_client::{ValueType, WatchFilter};
    ///
    /// let mut events = kvs.watch(WatchFilter::new().value_type(ValueType::Int).prefix("user_"));
    /// while let Some(event) = events.next().await {
    ///     let event = event?;
    ///     for change in &event.changes {
    ///         println!("{}: {change:?}", event.revision);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch(
        &self,
        filter: WatchFilter,
    ) -> impl Stream<Item = Result<Event>> + Send + Unpin + 'static {
        let watcher = Watcher {
            client: self.clone(),
            last: filter.since,
            filter,
            start: None,
            conn: None,
            connected: false,
            failures: 0,
            done: false,
        };
        Box::pin(stream::unfold(watcher, |mut watcher| async move {
            let item = watcher.next().await?;
            Some((item, watcher))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_event_parses_into_its_changes() {
        let put = Event::parse(
            5,
            "put",
            r#"{"type":"int","key":"a","value":1,"revision":5}"#,
        );
        assert_eq!(
            put.unwrap(),
            Event {
                revision: 5,
                changes: vec![Change::Put {
                    key: "a".into(),
                    value: Value::Int(1)
                }]
            }
        );
        let field = Event::parse(
            8,
            "field",
            r#"{"type":"map","key":"m","field":"f","value":null,"revision":8}"#,
        );
        assert_eq!(
            field.unwrap().changes,
            [Change::Field {
                key: "m".into(),
                field: "f".into(),
                value: None
            }]
        );
        let many = Event::parse(
            9,
            "changes",
            r#"{"revision":9,"changes":[
                {"kind":"delete","type":"int","key":"k","revision":9},
                {"kind":"member","type":"set","key":"s","member":"x","present":true,"revision":9},
                {"kind":"expire","type":"str","key":"t","revision":9}]}"#,
        );
        assert_eq!(
            many.unwrap().changes,
            [
                Change::Delete {
                    ty: ValueType::Int,
                    key: "k".into()
                },
                Change::Member {
                    key: "s".into(),
                    member: "x".into(),
                    present: true
                },
                Change::Expire {
                    ty: ValueType::Str,
                    key: "t".into()
                },
            ]
        );
    }

    #[test]
    fn an_event_that_does_not_parse_is_a_decode_error() {
        for (kind, data) in [
            ("put", r#"{"type":"int","key":"a","value":"x"}"#),
            ("put", r#"{"type":"nope","key":"a","value":1}"#),
            ("member", r#"{"type":"set","key":"s","member":"x"}"#),
            ("surprise", r#"{"type":"int","key":"a"}"#),
            ("delete", "not json"),
        ] {
            assert!(
                matches!(Event::parse(1, kind, data), Err(Error::Decode(_))),
                "{kind} {data}"
            );
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_maximum() {
        let waits: Vec<_> = (1..=8).map(backoff).collect();
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert_eq!(waits[2], FIRST_BACKOFF * 4);
        assert_eq!(waits[7], MAX_BACKOFF);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    }
}
