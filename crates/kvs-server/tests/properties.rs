//! The REST API against a simple model: any sequence of requests (whole
//! values of every type by resource and compatibility routes, deletes,
//! increments, map fields, set members, key listings, multi-key
//! transactions, and requests that must be refused) gets the answers the
//! model predicts, revisions included, and the state survives graceful
//! stops and restarts on the same data directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kvs_core::ValueType as Ty;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::{Client, Method, StatusCode};

/// Keys the requests use; the last one breaks the key rules.
const KEYS: [&str; 4] = ["a", "b", "K_1", "bad-key"];
const BAD_KEY: usize = 3;
/// Map fields and set members: path segments, percent-encoded on the way.
const NAMES: [&str; 5] = ["f", "g h", "\u{e9}", "x.y", "%"];

/// The original service's put, get and delete paths.
fn compat_paths(ty: Ty) -> [&'static str; 3] {
    match ty {
        Ty::Int => ["/int-put/", "/int-get/", "/int-del/"],
        Ty::Uint => ["/uint/put/", "/uint/get/", "/uint/del/"],
        Ty::Float => ["/float-put/", "/float-get/", "/float-del/"],
        Ty::Str => ["/str-put/", "/str-get/", "/str-del/"],
        Ty::Map => ["/map-put/", "/map-get/", "/map-del/"],
        Ty::Set => ["/set-put/", "/set-get/", "/set-del/"],
    }
}

/// A stored value, as the model keeps it.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Int(i32),
    Uint(u32),
    Float(f32),
    Str(String),
    Map(BTreeMap<String, String>),
    Set(BTreeSet<String>),
}

impl Val {
    fn ty(&self) -> Ty {
        match self {
            Val::Int(_) => Ty::Int,
            Val::Uint(_) => Ty::Uint,
            Val::Float(_) => Ty::Float,
            Val::Str(_) => Ty::Str,
            Val::Map(_) => Ty::Map,
            Val::Set(_) => Ty::Set,
        }
    }
}

/// A write's precondition, made concrete from the model at run time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cond {
    /// `If-Match` with the key's current revision (`at`, resolved).
    Current { at: Option<u64> },
    /// `If-Match` with one revision before it.
    Stale { at: Option<u64> },
    /// `If-None-Match: *`: create only.
    Absent,
    /// `If-Match: *`: only if it exists.
    Present,
}

#[derive(Debug, Clone)]
enum Op {
    /// PUT of a value, with `ttl=3600` or on a condition.
    PutWith {
        ty: Ty,
        key: usize,
        body: Vec<u8>,
        value: Val,
        ttl: bool,
        cond: Option<Cond>,
    },
    /// PUT of a whole value; `value` is `None` for a body the type refuses.
    Put {
        ty: Ty,
        key: usize,
        body: Vec<u8>,
        value: Option<Val>,
        compat: bool,
    },
    Get {
        ty: Ty,
        key: usize,
        compat: bool,
    },
    Delete {
        ty: Ty,
        key: usize,
        compat: bool,
    },
    /// The original's `/del/{key}`: every type at once.
    DeleteEverywhere {
        key: usize,
    },
    /// `POST /int/{key}/incr`, answering the value after; `None` sends no body.
    Incr {
        key: usize,
        by: Option<i32>,
    },
    /// The original's `/int-incrby/{key}` (or `/int-incr/{key}` for `None`),
    /// answering the value before.
    IncrBy {
        key: usize,
        by: Option<i32>,
    },
    MapPut {
        key: usize,
        field: usize,
        value: String,
    },
    MapGet {
        key: usize,
        field: usize,
    },
    MapDelete {
        key: usize,
        field: usize,
    },
    SetAdd {
        key: usize,
        member: usize,
    },
    SetContains {
        key: usize,
        member: usize,
    },
    SetRemove {
        key: usize,
        member: usize,
    },
    ListKeys {
        ty: Ty,
    },
    /// `POST /txn`.
    Txn {
        compares: Vec<Compare>,
        success: Vec<Step>,
        failure: Vec<Step>,
    },
}

/// A transaction's compare of one key.
#[derive(Debug, Clone)]
struct Compare {
    ty: Ty,
    key: usize,
    expect: Expected,
}

/// What a compare expects. `None`: what the key holds when the
/// transaction is sent (resolved by [`Model::resolve`]), so that compares
/// hold as often as they fail.
#[derive(Debug, Clone)]
enum Expected {
    /// The current revision, or, with `stale`, one before it.
    Revision {
        stale: bool,
        at: Option<u64>,
    },
    /// The current value, or the one given.
    Value(Option<Val>),
    Absent,
}

/// One operation of a transaction.
#[derive(Debug, Clone)]
struct Step {
    key: usize,
    op: StepOp,
}

#[derive(Debug, Clone)]
enum StepOp {
    Put(Val),
    Delete(Ty),
    Get(Ty),
    Incr(i32),
    Member { member: usize, present: bool },
    Field { field: usize, value: Option<String> },
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z]{1,4}", "\\PC{0,6}"]
}

fn ty() -> impl Strategy<Value = Ty> {
    (0..Ty::ALL.len()).prop_map(|i| Ty::ALL[i])
}

fn key() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0..BAD_KEY, 1 => Just(BAD_KEY)]
}

fn name() -> impl Strategy<Value = usize> {
    0..NAMES.len()
}

fn amount() -> impl Strategy<Value = i32> {
    prop_oneof![-5..5i32, any::<i32>(), Just(i32::MAX), Just(i32::MIN)]
}

/// A value of `ty` and a request body that says it.
fn valid_body(ty: Ty) -> BoxedStrategy<(Vec<u8>, Val)> {
    match ty {
        Ty::Int => (amount(), any::<bool>())
            .prop_map(|(v, pad)| {
                let body = if pad {
                    format!(" {v}\n")
                } else {
                    v.to_string()
                };
                (body.into_bytes(), Val::Int(v))
            })
            .boxed(),
        Ty::Uint => any::<u32>()
            .prop_map(|v| (v.to_string().into_bytes(), Val::Uint(v)))
            .boxed(),
        Ty::Float => (any::<u32>(), any::<bool>())
            .prop_filter_map("finite", |(bits, sci)| {
                let f = f32::from_bits(bits);
                f.is_finite().then(|| {
                    let body = if sci { format!("{f:e}") } else { f.to_string() };
                    (body.into_bytes(), Val::Float(f))
                })
            })
            .boxed(),
        Ty::Str => text()
            .prop_map(|s| (s.clone().into_bytes(), Val::Str(s)))
            .boxed(),
        Ty::Map => btree_map(text(), text(), 0..4)
            .prop_map(|m| (serde_json::to_vec(&m).unwrap(), Val::Map(m)))
            .boxed(),
        Ty::Set => vec(text(), 0..5)
            .prop_map(|members| {
                // Duplicates and any order: the set collapses and sorts them.
                let body = serde_json::to_vec(&members).unwrap();
                (body, Val::Set(members.into_iter().collect()))
            })
            .boxed(),
    }
}

/// Bodies each type must refuse.
fn invalid_body(ty: Ty) -> BoxedStrategy<Vec<u8>> {
    let bad: &[&[u8]] = match ty {
        Ty::Int => &[b"", b"abc", b"2147483648", b"1.5"],
        Ty::Uint => &[b"-1", b"4294967296", b"x"],
        Ty::Float => &[b"NaN", b"inf", b"1e39", b"one"],
        Ty::Str => &[b"\xff", b"a\xc3"],
        Ty::Map => &[b"[]", br#"{"a":1}"#, b"{", b""],
        Ty::Set => &[b"{}", br#"["a",1]"#, b"["],
    };
    let bad: Vec<Vec<u8>> = bad.iter().map(|b| b.to_vec()).collect();
    proptest::sample::select(bad).boxed()
}

fn put() -> impl Strategy<Value = Op> {
    (ty(), key(), any::<bool>(), prop::bool::weighted(0.15)).prop_flat_map(
        |(ty, key, compat, refused)| {
            if refused {
                invalid_body(ty)
                    .prop_map(move |body| Op::Put {
                        ty,
                        key,
                        body,
                        value: None,
                        compat,
                    })
                    .boxed()
            } else {
                valid_body(ty)
                    .prop_map(move |(body, value)| Op::Put {
                        ty,
                        key,
                        body,
                        value: Some(value),
                        compat,
                    })
                    .boxed()
            }
        },
    )
}

fn put_with() -> impl Strategy<Value = Op> {
    let cond = prop_oneof![
        Just(Cond::Current { at: None }),
        Just(Cond::Stale { at: None }),
        Just(Cond::Absent),
        Just(Cond::Present),
    ];
    (ty(), key(), any::<bool>(), prop::option::of(cond)).prop_flat_map(|(ty, key, ttl, cond)| {
        valid_body(ty).prop_map(move |(body, value)| Op::PutWith {
            ty,
            key,
            body,
            value,
            ttl,
            cond,
        })
    })
}

fn value() -> impl Strategy<Value = Val> {
    ty().prop_flat_map(|ty| valid_body(ty).prop_map(|(_, v)| v))
}

fn compare() -> impl Strategy<Value = Compare> {
    let expect = prop_oneof![
        any::<bool>().prop_map(|stale| Expected::Revision { stale, at: None }),
        Just(Expected::Value(None)),
        value().prop_map(|v| Expected::Value(Some(v))),
        Just(Expected::Absent),
    ];
    (ty(), key(), expect).prop_map(|(ty, key, expect)| {
        // A value given keeps its own type.
        let ty = match &expect {
            Expected::Value(Some(v)) => v.ty(),
            _ => ty,
        };
        Compare { ty, key, expect }
    })
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        3 => value().prop_map(StepOp::Put),
        1 => ty().prop_map(StepOp::Delete),
        2 => ty().prop_map(StepOp::Get),
        1 => amount().prop_map(StepOp::Incr),
        1 => (name(), any::<bool>()).prop_map(|(member, present)| StepOp::Member { member, present }),
        1 => (name(), prop::option::of(text())).prop_map(|(field, value)| StepOp::Field { field, value }),
    ];
    (key(), op).prop_map(|(key, op)| Step { key, op })
}

fn txn() -> impl Strategy<Value = Op> {
    (vec(compare(), 0..3), vec(step(), 0..5), vec(step(), 0..3)).prop_map(
        |(compares, success, failure)| Op::Txn {
            compares,
            success,
            failure,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => put(),
        3 => put_with(),
        3 => (ty(), key(), any::<bool>()).prop_map(|(ty, key, compat)| Op::Get { ty, key, compat }),
        2 => (ty(), key(), any::<bool>()).prop_map(|(ty, key, compat)| Op::Delete { ty, key, compat }),
        1 => key().prop_map(|key| Op::DeleteEverywhere { key }),
        2 => (key(), prop::option::of(amount())).prop_map(|(key, by)| Op::Incr { key, by }),
        1 => (key(), prop::option::of(amount())).prop_map(|(key, by)| Op::IncrBy { key, by }),
        2 => (key(), name(), text()).prop_map(|(key, field, value)| Op::MapPut { key, field, value }),
        1 => (key(), name()).prop_map(|(key, field)| Op::MapGet { key, field }),
        1 => (key(), name()).prop_map(|(key, field)| Op::MapDelete { key, field }),
        2 => (key(), name()).prop_map(|(key, member)| Op::SetAdd { key, member }),
        1 => (key(), name()).prop_map(|(key, member)| Op::SetContains { key, member }),
        1 => (key(), name()).prop_map(|(key, member)| Op::SetRemove { key, member }),
        1 => ty().prop_map(|ty| Op::ListKeys { ty }),
        3 => txn(),
    ]
}

/// The body an answer must carry.
#[derive(Debug)]
enum Body {
    /// Not checked (empty on a plain 200, a problem document on an error).
    Any,
    Text(String),
    Value(Val),
    Keys(Vec<String>),
    Json(serde_json::Value),
}

#[derive(Debug)]
struct Expect {
    status: StatusCode,
    body: Body,
    /// A header that must be `true`, or absent.
    flag: Option<(&'static str, bool)>,
    /// Whether the answer must say when the key expires.
    expires: Option<bool>,
}

impl Expect {
    fn status(status: StatusCode) -> Expect {
        Expect {
            status,
            body: Body::Any,
            flag: None,
            expires: None,
        }
    }
    fn ok() -> Expect {
        Expect::status(StatusCode::OK)
    }
    fn body(body: Body) -> Expect {
        Expect {
            body,
            ..Expect::ok()
        }
    }
    fn flag(name: &'static str, set: bool) -> Expect {
        Expect {
            flag: Some((name, set)),
            ..Expect::ok()
        }
    }
}

/// The model: what the API promises, in a few lines per operation.
#[derive(Debug, Default, Clone)]
struct Model {
    values: BTreeMap<(Ty, String), Val>,
    /// The revision of each value's last change.
    revisions: BTreeMap<(Ty, String), u64>,
    /// The revision of each value's creation.
    created: BTreeMap<(Ty, String), u64>,
    /// The store's revision.
    head: u64,
    /// What the request being applied changed: one revision for all.
    changed: BTreeSet<(Ty, String)>,
    /// The keys that have a TTL (all far in the future).
    ttls: BTreeSet<(Ty, String)>,
}

impl Model {
    fn get(&self, ty: Ty, key: &str) -> Option<&Val> {
        self.values.get(&(ty, key.to_owned()))
    }

    fn revision(&self, ty: Ty, key: &str) -> Option<u64> {
        self.get(ty, key)?;
        self.revisions.get(&(ty, key.to_owned())).copied()
    }

    /// `key` of type `ty` changes in the request being applied.
    fn touch(&mut self, ty: Ty, key: &str) {
        self.changed.insert((ty, key.to_owned()));
    }

    /// The request being applied is done: if it changed anything, that
    /// has the next revision.
    fn commit(&mut self) {
        if self.changed.is_empty() {
            return;
        }
        self.head += 1;
        for k in std::mem::take(&mut self.changed) {
            if self.values.contains_key(&k) {
                self.created.entry(k.clone()).or_insert(self.head);
            }
            self.revisions.insert(k, self.head);
        }
    }

    fn insert(&mut self, ty: Ty, key: &str, v: Val) {
        self.touch(ty, key);
        self.values.insert((ty, key.to_owned()), v);
    }

    fn remove(&mut self, ty: Ty, key: &str) -> bool {
        let removed = self.values.remove(&(ty, key.to_owned())).is_some();
        if removed {
            self.touch(ty, key);
            self.ttls.remove(&(ty, key.to_owned()));
            self.created.remove(&(ty, key.to_owned()));
        }
        removed
    }

    /// A put of `v`: with `ttl` the key now has one, without it none
    /// (increments and member and field changes keep it).
    fn put(&mut self, key: &str, v: Val, ttl: bool) {
        let at = (v.ty(), key.to_owned());
        self.insert(v.ty(), key, v);
        if ttl {
            self.ttls.insert(at);
        } else {
            self.ttls.remove(&at);
        }
    }

    fn has_ttl(&self, ty: Ty, key: &str) -> bool {
        self.ttls.contains(&(ty, key.to_owned()))
    }

    /// `op` with every compare's expectation made concrete from the state.
    fn resolve(&self, op: &Op) -> Op {
        if let Op::PutWith {
            ty,
            key,
            cond: Some(Cond::Current { .. } | Cond::Stale { .. }),
            ..
        } = op
        {
            let current = self.revision(*ty, KEYS[*key]);
            let mut op = op.clone();
            if let Op::PutWith { cond: Some(c), .. } = &mut op {
                *c = match c {
                    Cond::Current { .. } => Cond::Current { at: current },
                    _ => Cond::Stale {
                        at: current.map(|r| r - 1),
                    },
                };
            }
            return op;
        }
        let Op::Txn {
            compares,
            success,
            failure,
        } = op
        else {
            return op.clone();
        };
        let compares = compares
            .iter()
            .map(|c| {
                let key = KEYS[c.key];
                let expect = match &c.expect {
                    Expected::Revision { stale, .. } => {
                        let current = self.revision(c.ty, key).unwrap_or(self.head + 1);
                        let at = if *stale { current - 1 } else { current };
                        Expected::Revision {
                            stale: *stale,
                            at: Some(at),
                        }
                    }
                    Expected::Value(None) => {
                        Expected::Value(Some(self.get(c.ty, key).cloned().unwrap_or_else(
                            // A key that does not exist: any value fails.
                            || default_of(c.ty),
                        )))
                    }
                    other => other.clone(),
                };
                Compare {
                    expect,
                    ..c.clone()
                }
            })
            .collect();
        Op::Txn {
            compares,
            success: success.clone(),
            failure: failure.clone(),
        }
    }

    fn int(&self, key: &str) -> i32 {
        match self.get(Ty::Int, key) {
            Some(Val::Int(v)) => *v,
            _ => 0,
        }
    }

    fn map(&mut self, key: &str) -> &mut BTreeMap<String, String> {
        self.touch(Ty::Map, key);
        let v = self
            .values
            .entry((Ty::Map, key.to_owned()))
            .or_insert_with(|| Val::Map(BTreeMap::new()));
        match v {
            Val::Map(m) => m,
            _ => unreachable!(),
        }
    }

    fn set(&mut self, key: &str) -> &mut BTreeSet<String> {
        self.touch(Ty::Set, key);
        let v = self
            .values
            .entry((Ty::Set, key.to_owned()))
            .or_insert_with(|| Val::Set(BTreeSet::new()));
        match v {
            Val::Set(s) => s,
            _ => unreachable!(),
        }
    }

    /// Applies `op` and says what the server must answer.
    fn apply(&mut self, op: &Op) -> Expect {
        let expect = self.answer(op);
        self.commit();
        expect
    }

    fn answer(&mut self, op: &Op) -> Expect {
        let key_of = |k: usize| KEYS[k].to_owned();
        let bad = |k: usize| k == BAD_KEY;
        match op {
            Op::Put { key, .. }
            | Op::PutWith { key, .. }
            | Op::Get { key, .. }
            | Op::Delete { key, .. }
            | Op::DeleteEverywhere { key }
            | Op::Incr { key, .. }
            | Op::IncrBy { key, .. }
            | Op::MapPut { key, .. }
            | Op::MapGet { key, .. }
            | Op::MapDelete { key, .. }
            | Op::SetAdd { key, .. }
            | Op::SetContains { key, .. }
            | Op::SetRemove { key, .. }
                if bad(*key) =>
            {
                return Expect::status(StatusCode::BAD_REQUEST);
            }
            _ => {}
        }
        match op {
            Op::Put { value: None, .. } => Expect::status(StatusCode::BAD_REQUEST),
            Op::Put {
                key,
                value: Some(v),
                ..
            } => {
                self.put(&key_of(*key), v.clone(), false);
                Expect::ok()
            }
            Op::PutWith {
                ty,
                key,
                value,
                ttl,
                cond,
                ..
            } => {
                let exists = self.get(*ty, &key_of(*key)).is_some();
                let holds = match cond {
                    None => true,
                    Some(Cond::Current { at }) => at.is_some(),
                    Some(Cond::Stale { .. }) => false,
                    Some(Cond::Absent) => !exists,
                    Some(Cond::Present) => exists,
                };
                if !holds {
                    return Expect::status(StatusCode::PRECONDITION_FAILED);
                }
                self.put(&key_of(*key), value.clone(), *ttl);
                Expect::ok()
            }
            Op::Get { ty, key, .. } => match self.get(*ty, &key_of(*key)) {
                Some(v) => Expect {
                    expires: Some(self.has_ttl(*ty, &key_of(*key))),
                    ..Expect::body(Body::Value(v.clone()))
                },
                None => Expect::status(StatusCode::NOT_FOUND),
            },
            Op::Delete { ty, key, .. } => {
                let removed = self.remove(*ty, &key_of(*key));
                Expect::flag("deleted", removed)
            }
            Op::DeleteEverywhere { key } => {
                let mut removed = false;
                for ty in Ty::ALL {
                    removed |= self.remove(ty, &key_of(*key));
                }
                Expect::flag("deleted", removed)
            }
            Op::Incr { key, by } | Op::IncrBy { key, by } => {
                let before = self.int(&key_of(*key));
                match before.checked_add(by.unwrap_or(1)) {
                    None => Expect::status(StatusCode::CONFLICT),
                    Some(after) => {
                        self.insert(Ty::Int, &key_of(*key), Val::Int(after));
                        let answer = if matches!(op, Op::Incr { .. }) {
                            after
                        } else {
                            before
                        };
                        Expect::body(Body::Text(answer.to_string()))
                    }
                }
            }
            Op::MapPut { key, field, value } => {
                self.map(&key_of(*key))
                    .insert(NAMES[*field].to_owned(), value.clone());
                Expect::ok()
            }
            Op::MapGet { key, field } => match self.get(Ty::Map, &key_of(*key)) {
                Some(Val::Map(m)) if m.contains_key(NAMES[*field]) => {
                    Expect::body(Body::Text(m[NAMES[*field]].clone()))
                }
                _ => Expect::status(StatusCode::NOT_FOUND),
            },
            Op::MapDelete { key, field } => {
                let removed = match self.get(Ty::Map, &key_of(*key)) {
                    Some(Val::Map(m)) => m.contains_key(NAMES[*field]),
                    _ => false,
                };
                if removed {
                    self.map(&key_of(*key)).remove(NAMES[*field]);
                }
                Expect::flag("deleted", removed)
            }
            Op::SetAdd { key, member } => {
                let added = self.add_member(&key_of(*key), *member);
                Expect::flag("added", added)
            }
            Op::SetContains { key, member } => match self.get(Ty::Set, &key_of(*key)) {
                Some(Val::Set(s)) if s.contains(NAMES[*member]) => {
                    Expect::body(Body::Text("true".into()))
                }
                _ => Expect::status(StatusCode::NOT_FOUND),
            },
            Op::SetRemove { key, member } => {
                let removed = match self.get(Ty::Set, &key_of(*key)) {
                    Some(Val::Set(s)) => s.contains(NAMES[*member]),
                    _ => false,
                };
                if removed {
                    self.set(&key_of(*key)).remove(NAMES[*member]);
                }
                Expect::flag("deleted", removed)
            }
            Op::ListKeys { ty } => Expect::body(Body::Keys(self.keys(*ty))),
            Op::Txn {
                compares,
                success,
                failure,
            } => self.txn(compares, success, failure),
        }
    }

    /// Adds `member` to the set `key` (made if absent); whether it was new.
    fn add_member(&mut self, key: &str, member: usize) -> bool {
        let had = matches!(self.get(Ty::Set, key), Some(Val::Set(s)) if s.contains(NAMES[member]));
        if !had {
            self.set(key).insert(NAMES[member].to_owned());
        }
        !had
    }

    fn txn(&mut self, compares: &[Compare], success: &[Step], failure: &[Step]) -> Expect {
        let keys = compares.iter().map(|c| c.key);
        if keys
            .chain(success.iter().chain(failure).map(|s| s.key))
            .any(|k| k == BAD_KEY)
        {
            return Expect::status(StatusCode::BAD_REQUEST);
        }
        let holds = |c: &Compare| {
            let key = KEYS[c.key];
            match &c.expect {
                Expected::Revision { at, .. } => self.revision(c.ty, key) == *at,
                Expected::Value(v) => self.get(c.ty, key) == v.as_ref(),
                Expected::Absent => self.get(c.ty, key).is_none(),
            }
        };
        let succeeded = compares.iter().all(holds);
        let steps = if succeeded { success } else { failure };
        let before = self.clone();
        let next = self.head + 1;
        let mut results = Vec::new();
        for step in steps {
            match self.step(step, next) {
                Some(result) => results.push(result),
                None => {
                    // Overflow: nothing of it stays.
                    *self = before;
                    return Expect::status(StatusCode::CONFLICT);
                }
            }
        }
        let revision = if self.changed.is_empty() {
            self.head
        } else {
            next
        };
        Expect::body(Body::Json(serde_json::json!({
            "succeeded": succeeded,
            "revision": revision,
            "results": results,
        })))
    }

    /// Runs one step of a transaction that gets revision `next` if it
    /// changes anything; its result, or `None` for an overflow.
    fn step(&mut self, step: &Step, next: u64) -> Option<serde_json::Value> {
        use serde_json::json;
        let key = KEYS[step.key];
        Some(match &step.op {
            StepOp::Put(v) => {
                self.put(key, v.clone(), false);
                json!({"revision": next})
            }
            StepOp::Delete(ty) => json!({"deleted": self.remove(*ty, key)}),
            StepOp::Get(ty) => match self.get(*ty, key) {
                Some(v) => {
                    let changed = self.changed.contains(&(*ty, key.to_owned()));
                    let revision = match changed {
                        true => next,
                        false => self.revision(*ty, key).unwrap(),
                    };
                    json!({"value": to_json(v), "revision": revision})
                }
                None => json!({"absent": true}),
            },
            StepOp::Incr(by) => {
                let after = self.int(key).checked_add(*by)?;
                self.insert(Ty::Int, key, Val::Int(after));
                json!({"value": after})
            }
            StepOp::Member {
                member,
                present: true,
            } => json!({"changed": self.add_member(key, *member)}),
            StepOp::Member {
                member,
                present: false,
            } => {
                let had = matches!(self.get(Ty::Set, key), Some(Val::Set(s)) if s.contains(NAMES[*member]));
                if had {
                    self.set(key).remove(NAMES[*member]);
                }
                json!({"changed": had})
            }
            StepOp::Field { field, value } => {
                let had = matches!(self.get(Ty::Map, key), Some(Val::Map(m)) if m.contains_key(NAMES[*field]));
                let changed = match value {
                    Some(v) => {
                        self.map(key).insert(NAMES[*field].to_owned(), v.clone());
                        true
                    }
                    None if had => {
                        self.map(key).remove(NAMES[*field]);
                        true
                    }
                    None => false,
                };
                json!({"changed": changed})
            }
        })
    }

    fn keys(&self, ty: Ty) -> Vec<String> {
        self.values
            .keys()
            .filter(|(t, _)| *t == ty)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

/// Percent-encodes a path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_.~-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The request for `op`: method, path under the base, body.
fn request(op: &Op) -> (Method, String, Vec<u8>) {
    let k = |k: &usize| KEYS[*k];
    let n = |n: &usize| segment(NAMES[*n]);
    match op {
        Op::Put {
            ty,
            key,
            body,
            compat,
            ..
        } => {
            let path = if *compat {
                format!("{}{}", compat_paths(*ty)[0], k(key))
            } else {
                format!("/{}/{}", ty.name(), k(key))
            };
            (Method::PUT, path, body.clone())
        }
        Op::Get { ty, key, compat } => {
            let path = if *compat {
                format!("{}{}", compat_paths(*ty)[1], k(key))
            } else {
                format!("/{}/{}", ty.name(), k(key))
            };
            (Method::GET, path, Vec::new())
        }
        Op::Delete { ty, key, compat } => {
            let path = if *compat {
                format!("{}{}", compat_paths(*ty)[2], k(key))
            } else {
                format!("/{}/{}", ty.name(), k(key))
            };
            (Method::DELETE, path, Vec::new())
        }
        Op::DeleteEverywhere { key } => (Method::DELETE, format!("/del/{}", k(key)), Vec::new()),
        Op::Incr { key, by } => (
            Method::POST,
            format!("/int/{}/incr", k(key)),
            by.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        ),
        Op::IncrBy { key, by: None } => (Method::PUT, format!("/int-incr/{}", k(key)), Vec::new()),
        Op::IncrBy { key, by: Some(by) } => (
            Method::PUT,
            format!("/int-incrby/{}", k(key)),
            by.to_string().into_bytes(),
        ),
        Op::MapPut { key, field, value } => (
            Method::PUT,
            format!("/map/{}/{}", k(key), n(field)),
            value.clone().into_bytes(),
        ),
        Op::MapGet { key, field } => (
            Method::GET,
            format!("/map/{}/{}", k(key), n(field)),
            Vec::new(),
        ),
        Op::MapDelete { key, field } => (
            Method::DELETE,
            format!("/map/{}/{}", k(key), n(field)),
            Vec::new(),
        ),
        Op::SetAdd { key, member } => (
            Method::PUT,
            format!("/set/{}/{}", k(key), n(member)),
            Vec::new(),
        ),
        Op::SetContains { key, member } => (
            Method::GET,
            format!("/set/{}/{}", k(key), n(member)),
            Vec::new(),
        ),
        Op::SetRemove { key, member } => (
            Method::DELETE,
            format!("/set/{}/{}", k(key), n(member)),
            Vec::new(),
        ),
        Op::ListKeys { ty } => (Method::GET, format!("/keys/{}", ty.name()), Vec::new()),
        Op::PutWith {
            ty, key, body, ttl, ..
        } => {
            let query = if *ttl { "?ttl=3600" } else { "" };
            let path = format!("/{}/{}{query}", ty.name(), k(key));
            (Method::PUT, path, body.clone())
        }
        Op::Txn {
            compares,
            success,
            failure,
        } => {
            let body = serde_json::json!({
                "compare": compares.iter().map(compare_json).collect::<Vec<_>>(),
                "success": success.iter().map(step_json).collect::<Vec<_>>(),
                "failure": failure.iter().map(step_json).collect::<Vec<_>>(),
            });
            (
                Method::POST,
                "/txn".to_owned(),
                body.to_string().into_bytes(),
            )
        }
    }
}

/// A value's JSON form, as GET renders it.
fn to_json(v: &Val) -> serde_json::Value {
    match v {
        Val::Int(v) => (*v).into(),
        Val::Uint(v) => (*v).into(),
        // The shortest text that reads back as the same f32.
        Val::Float(v) => serde_json::Number::from_f64(v.to_string().parse().unwrap())
            .unwrap()
            .into(),
        Val::Str(s) => s.clone().into(),
        Val::Map(m) => serde_json::to_value(m).unwrap(),
        Val::Set(s) => serde_json::to_value(s).unwrap(),
    }
}

/// A value of type `ty`.
fn default_of(ty: Ty) -> Val {
    match ty {
        Ty::Int => Val::Int(0),
        Ty::Uint => Val::Uint(0),
        Ty::Float => Val::Float(0.0),
        Ty::Str => Val::Str(String::new()),
        Ty::Map => Val::Map(BTreeMap::new()),
        Ty::Set => Val::Set(BTreeSet::new()),
    }
}

fn compare_json(c: &Compare) -> serde_json::Value {
    let mut json = serde_json::json!({"type": c.ty.name(), "key": KEYS[c.key]});
    let (name, value) = match &c.expect {
        Expected::Revision { at, .. } => ("revision", at.expect("resolved").into()),
        Expected::Value(v) => ("value", to_json(v.as_ref().expect("resolved"))),
        Expected::Absent => ("absent", true.into()),
    };
    json[name] = value;
    json
}

fn step_json(step: &Step) -> serde_json::Value {
    use serde_json::json;
    let key = KEYS[step.key];
    match &step.op {
        StepOp::Put(v) => {
            json!({"op": "put", "type": v.ty().name(), "key": key, "value": to_json(v)})
        }
        StepOp::Delete(ty) => json!({"op": "delete", "type": ty.name(), "key": key}),
        StepOp::Get(ty) => json!({"op": "get", "type": ty.name(), "key": key}),
        StepOp::Incr(by) => json!({"op": "incr", "key": key, "by": by}),
        StepOp::Member { member, present } => {
            let op = if *present {
                "add_member"
            } else {
                "remove_member"
            };
            json!({"op": op, "key": key, "member": NAMES[*member]})
        }
        StepOp::Field {
            field,
            value: Some(v),
        } => json!({"op": "put_field", "key": key, "field": NAMES[*field], "value": v}),
        StepOp::Field { field, value: None } => {
            json!({"op": "delete_field", "key": key, "field": NAMES[*field]})
        }
    }
}

/// Whether `body`, answered for a value of `want`'s type, says `want`.
fn says(want: &Val, body: &str) -> bool {
    match want {
        Val::Int(v) => body == v.to_string(),
        Val::Uint(v) => body == v.to_string(),
        // The shortest text that reads back as the same f32.
        Val::Float(v) => body
            .parse::<f32>()
            .is_ok_and(|f| f.to_bits() == v.to_bits()),
        Val::Str(s) => body == s,
        // JSON, sorted: exactly what serializing the sorted model gives.
        Val::Map(m) => body == serde_json::to_string(m).unwrap(),
        Val::Set(s) => body == serde_json::to_string(s).unwrap(),
    }
}

fn value_content_type(ty: Ty) -> &'static str {
    match ty {
        Ty::Map | Ty::Set => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// The precondition header of `op`, if it has one.
fn precondition(op: &Op) -> Option<(&'static str, String)> {
    let Op::PutWith { cond: Some(c), .. } = op else {
        return None;
    };
    Some(match c {
        // A key that is absent has no revision: a tag no value has.
        Cond::Current { at } | Cond::Stale { at } => {
            let tag = at.map_or("\"none\"".to_owned(), |r| format!("\"{r}\""));
            ("if-match", tag)
        }
        Cond::Absent => ("if-none-match", "*".to_owned()),
        Cond::Present => ("if-match", "*".to_owned()),
    })
}

/// Sends `op` and checks the answer against `expect`.
async fn check(client: &Client, base: &str, op: &Op, expect: Expect) -> Result<(), TestCaseError> {
    let (method, path, body) = request(op);
    let mut what = format!("{method} {path} {:?}", String::from_utf8_lossy(&body));
    let mut req = client.request(method, format!("{base}{path}")).body(body);
    if let Some((name, value)) = precondition(op) {
        what = format!("{what} {name}: {value}");
        req = req.header(name, value);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap_or_default();
    prop_assert_eq!(status, expect.status, "{}: answered {:?}", what, text);
    if !status.is_success() {
        prop_assert_eq!(
            content_type.as_str(),
            "application/problem+json",
            "{}",
            what
        );
    }
    match &expect.body {
        Body::Any => {}
        Body::Text(t) => prop_assert_eq!(&text, t, "{}", what),
        Body::Value(v) => {
            prop_assert!(says(v, &text), "{}: answered {:?} for {:?}", what, text, v);
            prop_assert_eq!(
                content_type.as_str(),
                value_content_type(v.ty()),
                "{}",
                what
            );
        }
        Body::Keys(keys) => {
            let got: Vec<String> = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{what}: {e}: {text:?}")))?;
            prop_assert_eq!(&got, keys, "{}", what);
        }
        Body::Json(want) => {
            let got: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{what}: {e}: {text:?}")))?;
            prop_assert_eq!(&got, want, "{}", what);
        }
    }
    if let Some((name, set)) = expect.flag {
        let got = headers.get(name).is_some_and(|v| v == "true");
        prop_assert_eq!(got, set, "{}: header {}", what, name);
    }
    if let Some(expires) = expect.expires {
        let got = headers.contains_key("kvs-expires-at");
        prop_assert_eq!(got, expires, "{}: says when it expires", what);
    }
    Ok(())
}

/// The server's whole state, listed and read back, equals the model's.
async fn assert_state(
    client: &Client,
    base: &str,
    model: &Model,
    when: &str,
) -> Result<(), TestCaseError> {
    for ty in Ty::ALL {
        let listing = Op::ListKeys { ty };
        check(
            client,
            base,
            &listing,
            Expect::body(Body::Keys(model.keys(ty))),
        )
        .await
        .map_err(|e| TestCaseError::fail(format!("{when}: {e}")))?;
        for key in model.keys(ty) {
            let v = model.get(ty, &key).unwrap().clone();
            let k = KEYS.iter().position(|k| *k == key).unwrap();
            let get = Op::Get {
                ty,
                key: k,
                compat: false,
            };
            let expect = Expect {
                expires: Some(model.has_ttl(ty, &key)),
                ..Expect::body(Body::Value(v))
            };
            check(client, base, &get, expect)
                .await
                .map_err(|e| TestCaseError::fail(format!("{when}: {e}")))?;
        }
    }
    Ok(())
}

impl Model {
    /// Checks that a replay gave back every key's revision and the store's:
    /// the log keeps them (its own tests say how).
    async fn assert_revisions(
        &self,
        client: &Client,
        base: &str,
        when: &str,
    ) -> Result<(), TestCaseError> {
        let revision = |resp: &reqwest::Response, name: &str| -> u64 {
            let v = resp.headers()[name].to_str().unwrap();
            v.trim_matches('"').parse().unwrap()
        };
        for (ty, key) in self.values.keys() {
            let expected = self.revision(*ty, key).expect("a live key has a revision");
            let url = format!("{base}/{}/{key}", ty.name());
            let resp = client.get(url).send().await.unwrap();
            let got = revision(&resp, "etag");
            prop_assert_eq!(
                got,
                expected,
                "{}: the revision of {} key {}",
                when,
                ty.name(),
                key
            );
            let created = self.created[&(*ty, key.clone())];
            prop_assert_eq!(
                revision(&resp, "kvs-create-revision"),
                created,
                "{}: the creation of {} key {}",
                when,
                ty.name(),
                key
            );
        }
        let resp = client.get(format!("{base}/keys/int")).send().await.unwrap();
        prop_assert_eq!(
            revision(&resp, "kvs-revision"),
            self.head,
            "{}: the store's revision",
            when
        );
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Case {
    before_restart: Vec<Op>,
    after_restart: Vec<Op>,
    durability: &'static str,
    compact_min_bytes: Option<u64>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        vec(op(), 1..24),
        vec(op(), 0..12),
        prop::sample::select(vec!["sync", "async"]),
        prop::option::of(64..1024u64),
    )
        .prop_map(
            |(before_restart, after_restart, durability, compact_min_bytes)| Case {
                before_restart,
                after_restart,
                durability,
                compact_min_bytes,
            },
        )
}

async fn start(dir: &Path, case: &Case) -> kvs_server::Running {
    let compact = case.compact_min_bytes.map(|b| b.to_string());
    let mut args = vec!["--durability", case.durability];
    if let Some(c) = &compact {
        args.extend(["--compact-min-bytes", c]);
    }
    kvs_server::spawn_with(dir, &args)
        .await
        .expect("server failed to start")
}

/// Stops gracefully: the log is flushed and closed when this returns.
async fn stop(server: kvs_server::Running) {
    server.stop().await.expect("graceful stop");
}

/// A temporary data directory, in memory where the machine has /dev/shm
/// (sync durability fsyncs every batch).
fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

#[test]
fn requests_answer_as_the_model_says_and_the_state_survives_restarts() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = kvs_testkit::http::client();
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&case(), |case| {
            rt.block_on(async {
                let dir = scratch_dir();
                let mut model = Model::default();
                let server = start(dir.path(), &case).await;
                let base = format!("{}/kvs/v1-0-0", server.url());
                for op in &case.before_restart {
                    let op = model.resolve(op);
                    let expect = model.apply(&op);
                    check(&client, &base, &op, expect).await?;
                }
                assert_state(&client, &base, &model, "before the first restart").await?;
                stop(server).await;

                let server = start(dir.path(), &case).await;
                let base = format!("{}/kvs/v1-0-0", server.url());
                assert_state(&client, &base, &model, "after the first restart").await?;
                model
                    .assert_revisions(&client, &base, "after the first restart")
                    .await?;
                for op in &case.after_restart {
                    let op = model.resolve(op);
                    let expect = model.apply(&op);
                    check(&client, &base, &op, expect).await?;
                }
                stop(server).await;

                let server = start(dir.path(), &case).await;
                let base = format!("{}/kvs/v1-0-0", server.url());
                assert_state(&client, &base, &model, "after the second restart").await?;
                model
                    .assert_revisions(&client, &base, "after the second restart")
                    .await?;
                stop(server).await;
                Ok(())
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
