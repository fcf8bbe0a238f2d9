//! kvs-server's memory against the log: every key and value read over
//! REST, compared with the state txn-server's log file replays to.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use kvs_core::{Change, PlainState, ValueType};
use kvs_log::{FileLog, FileOptions, Log, ReplayStats};
use serde::Serialize;

use super::SoakError;

/// Divergences described in the report.
const EXAMPLES: usize = 10;

/// kvs-server's memory against the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// Keys kvs-server listed, all types.
    pub memory_keys: u64,
    /// Keys live in the log once replayed.
    pub log_keys: u64,
    pub equal: u64,
    /// In the log, not in memory.
    pub missing: u64,
    /// In memory, not in the log.
    pub extra: u64,
    /// In both with different values, or listed but not readable.
    pub differing: u64,
    /// The first few divergences by type and key.
    pub examples: Vec<String>,
}

impl Comparison {
    pub fn divergences(&self) -> u64 {
        self.missing + self.extra + self.differing
    }
}

/// What kvs-server answered for a listed key: the body of a 200, or the
/// status of anything else.
pub type Fetched = Result<Vec<u8>, u16>;

/// Compares kvs-server's keys and values with the state the log replays
/// to. Values must be byte for byte what the server renders from the log's.
pub fn compare(memory: &HashMap<(ValueType, String), Fetched>, log: &PlainState) -> Comparison {
    let mut c = Comparison {
        memory_keys: memory.len() as u64,
        log_keys: log.len() as u64,
        ..Comparison::default()
    };
    let mut found: Vec<(ValueType, &str, String)> = Vec::new();
    for ((ty, key), value) in log {
        let rendered = value.render();
        match memory.get(&(*ty, key.as_str().to_owned())) {
            None => {
                c.missing += 1;
                found.push((
                    *ty,
                    key.as_str(),
                    format!("missing from memory; the log has {}", quote(&rendered)),
                ));
            }
            Some(Ok(body)) if *body == rendered => c.equal += 1,
            Some(Ok(body)) => {
                c.differing += 1;
                found.push((
                    *ty,
                    key.as_str(),
                    format!("memory has {}, the log {}", quote(body), quote(&rendered)),
                ));
            }
            Some(Err(status)) => {
                c.differing += 1;
                found.push((
                    *ty,
                    key.as_str(),
                    format!("listed, but GET answered {status}"),
                ));
            }
        }
    }
    for ((ty, key), fetched) in memory {
        let in_log = kvs_core::Key::parse(key)
            .map(|k| log.contains_key(&(*ty, k)))
            .unwrap_or(false);
        if !in_log {
            c.extra += 1;
            let what = match fetched {
                Ok(body) => quote(body),
                Err(status) => format!("(GET answered {status})"),
            };
            found.push((*ty, key, format!("in memory only: {what}")));
        }
    }
    found.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    c.examples = found
        .into_iter()
        .take(EXAMPLES)
        .map(|(ty, key, what)| format!("{}/{key}: {what}", ty.name()))
        .collect();
    c
}

/// A value's text for a message, cut short.
fn quote(bytes: &[u8]) -> String {
    const MAX: usize = 48;
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// The harness's dump of kvs-server (type name and key to body) keyed
/// as [`compare`] takes it. The dump fails the test on a listed key that
/// does not answer 200, so every value here is a body.
pub(super) fn memory_of(
    dump: BTreeMap<(String, String), String>,
) -> HashMap<(ValueType, String), Fetched> {
    dump.into_iter()
        .map(|((ty, key), body)| {
            let ty = ty.parse().expect("the dump names a value type");
            ((ty, key), Ok(body.into_bytes()))
        })
        .collect()
}

/// Replays txn-server's log file into a plain state, as a fresh
/// kvs-server would.
pub(super) async fn read_log(path: &Path) -> Result<(PlainState, ReplayStats), SoakError> {
    let opts = FileOptions {
        truncate_corrupt: false,
        compact_min_bytes: u64::MAX,
    };
    let mut log = FileLog::open(path, opts)?;
    let state = Arc::new(Mutex::new(PlainState::new()));
    let sink = state.clone();
    let stats = log
        .replay(move |c: Change| c.txn.apply_to(&mut *sink.lock()))
        .await?;
    drop(log);
    let state = std::mem::take(&mut *state.lock());
    Ok((state, stats))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use kvs_core::{Key, Value};

    use super::*;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn comparison_finds_missing_extra_and_differing_keys() {
        let mut log = PlainState::new();
        log.insert((ValueType::Int, key("a")), Value::Int(-7));
        log.insert((ValueType::Str, key("a")), Value::Str("x".into()));
        log.insert((ValueType::Float, key("f")), Value::Float(0.1));
        let map: BTreeMap<String, String> =
            [("b".into(), "2".into()), ("a".into(), "1".into())].into();
        log.insert((ValueType::Map, key("m")), Value::Map(map));
        log.insert((ValueType::Set, key("gone")), Value::Set(BTreeSet::new()));
        log.insert((ValueType::Uint, key("u")), Value::Uint(5));

        let mut memory: HashMap<(ValueType, String), Fetched> = HashMap::new();
        memory.insert((ValueType::Int, "a".into()), Ok(b"-7".to_vec()));
        memory.insert((ValueType::Str, "a".into()), Ok(b"y".to_vec()));
        memory.insert((ValueType::Float, "f".into()), Ok(b"0.1".to_vec()));
        memory.insert(
            (ValueType::Map, "m".into()),
            Ok(br#"{"a":"1","b":"2"}"#.to_vec()),
        );
        memory.insert((ValueType::Uint, "u".into()), Err(404));
        memory.insert((ValueType::Str, "new".into()), Ok(b"z".to_vec()));

        let c = compare(&memory, &log);
        assert_eq!((c.memory_keys, c.log_keys, c.equal), (6, 6, 3), "{c:?}");
        assert_eq!((c.missing, c.extra, c.differing), (1, 1, 2), "{c:?}");
        assert_eq!(c.divergences(), 4);
        assert_eq!(
            c.examples,
            [
                "uint/u: listed, but GET answered 404",
                "str/a: memory has \"y\", the log \"x\"",
                "str/new: in memory only: \"z\"",
                "set/gone: missing from memory; the log has \"[]\"",
            ]
        );

        let same: HashMap<_, Fetched> = log
            .iter()
            .map(|((ty, k), v)| ((*ty, k.as_str().to_owned()), Ok(v.render())))
            .collect();
        let c = compare(&same, &log);
        assert_eq!((c.equal, c.divergences()), (6, 0));
        assert!(c.examples.is_empty());
    }

    #[test]
    fn examples_are_few_and_values_cut_short() {
        let mut log = PlainState::new();
        for i in 0..50 {
            log.insert(
                (ValueType::Str, key(&format!("k{i:02}"))),
                Value::Str("v".repeat(100)),
            );
        }
        let c = compare(&HashMap::new(), &log);
        assert_eq!(c.missing, 50);
        assert_eq!(c.examples.len(), EXAMPLES);
        assert!(
            c.examples[0].starts_with("str/k00: missing"),
            "{}",
            c.examples[0]
        );
        assert!(c.examples[0].ends_with("…"), "{}", c.examples[0]);
    }
}
