//! Multi-key transactions, `POST /txn`: compares, then the `success`
//! operations if every compare holds, else the `failure` ones, all at one
//! revision.

use std::time::Duration;

use kvs_core::{Key, Value, ValueType};
use reqwest::header::CONTENT_TYPE;
use serde_json::{Map, Value as Json, json};

use crate::client::{check_value, quote};
use crate::revision::ttl_seconds;
use crate::{Client, Error, Result, Revised};

/// A condition on one key: a transaction runs its `success` operations
/// only if all of its compares hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    ty: ValueType,
    key: String,
    expect: Expect,
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Revision(u64),
    Value(Value),
    Absent,
}

impl Compare {
    /// Holds when the key of type `ty` is at `revision` (its last change).
    pub fn revision(ty: ValueType, key: impl Into<String>, revision: u64) -> Compare {
        Compare {
            ty,
            key: key.into(),
            expect: Expect::Revision(revision),
        }
    }

    /// Holds when the key (of `value`'s type) holds `value`.
    pub fn value(key: impl Into<String>, value: Value) -> Compare {
        Compare {
            ty: value.value_type(),
            key: key.into(),
            expect: Expect::Value(value),
        }
    }

    /// Holds when the key of type `ty` is absent.
    pub fn absent(ty: ValueType, key: impl Into<String>) -> Compare {
        Compare {
            ty,
            key: key.into(),
            expect: Expect::Absent,
        }
    }

    fn to_json(&self) -> Result<Json> {
        Key::parse(&self.key)?;
        let mut compare = json!({ "type": self.ty.name(), "key": self.key });
        let (name, expected) = match &self.expect {
            Expect::Revision(rev) => ("revision", json!(rev)),
            Expect::Value(value) => {
                check_value(value)?;
                ("value", value.to_json())
            }
            Expect::Absent => ("absent", json!(true)),
        };
        compare[name] = expected;
        Ok(compare)
    }
}

/// One operation of a transaction; each has a [`TxnResult`] of its own.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnOp {
    /// Stores a value, for `ttl` when given ([`TxnResult::Put`]).
    Put {
        /// The key.
        key: String,
        /// The value, whose type is the key's namespace.
        value: Value,
        /// How long the key lives; `None`: permanent.
        ttl: Option<Duration>,
    },
    /// Removes a key ([`TxnResult::Deleted`]).
    Delete {
        /// The namespace.
        ty: ValueType,
        /// The key.
        key: String,
    },
    /// Reads a key, as of the transaction ([`TxnResult::Got`]).
    Get {
        /// The namespace.
        ty: ValueType,
        /// The key.
        key: String,
    },
    /// Adds to an int key ([`TxnResult::Incremented`]).
    Incr {
        /// The int key.
        key: String,
        /// The amount, may be negative.
        by: i32,
    },
    /// Adds (`present`) or removes a set member ([`TxnResult::Changed`]).
    Member {
        /// The set key.
        key: String,
        /// The member.
        member: String,
        /// Add when true, remove when false.
        present: bool,
    },
    /// Sets a map field, or removes it when `value` is `None`
    /// ([`TxnResult::Changed`]).
    Field {
        /// The map key.
        key: String,
        /// The field.
        field: String,
        /// The field's new value; `None` removes it.
        value: Option<String>,
    },
}

impl TxnOp {
    /// Stores `value` under `key` in its type's namespace.
    pub fn put(key: impl Into<String>, value: Value) -> TxnOp {
        TxnOp::Put {
            key: key.into(),
            value,
            ttl: None,
        }
    }

    /// Stores `value` under `key` for `ttl` (whole seconds, at least one),
    /// sent as the operation's `ttl`.
    pub fn put_with_ttl(key: impl Into<String>, value: Value, ttl: Duration) -> TxnOp {
        TxnOp::Put {
            key: key.into(),
            value,
            ttl: Some(ttl),
        }
    }

    /// Removes `key` from type `ty`'s namespace.
    pub fn delete(ty: ValueType, key: impl Into<String>) -> TxnOp {
        TxnOp::Delete {
            ty,
            key: key.into(),
        }
    }

    /// Reads `key` of type `ty`.
    pub fn get(ty: ValueType, key: impl Into<String>) -> TxnOp {
        TxnOp::Get {
            ty,
            key: key.into(),
        }
    }

    /// Adds `by` to int `key` (absent counts as 0).
    pub fn incr(key: impl Into<String>, by: i32) -> TxnOp {
        TxnOp::Incr {
            key: key.into(),
            by,
        }
    }

    /// Adds `member` to set `key`.
    pub fn add_member(key: impl Into<String>, member: impl Into<String>) -> TxnOp {
        TxnOp::Member {
            key: key.into(),
            member: member.into(),
            present: true,
        }
    }

    /// Removes `member` from set `key`.
    pub fn remove_member(key: impl Into<String>, member: impl Into<String>) -> TxnOp {
        TxnOp::Member {
            key: key.into(),
            member: member.into(),
            present: false,
        }
    }

    /// Sets `field` of map `key` to `value`.
    pub fn put_field(
        key: impl Into<String>,
        field: impl Into<String>,
        value: impl Into<String>,
    ) -> TxnOp {
        TxnOp::Field {
            key: key.into(),
            field: field.into(),
            value: Some(value.into()),
        }
    }

    /// Removes `field` of map `key`.
    pub fn delete_field(key: impl Into<String>, field: impl Into<String>) -> TxnOp {
        TxnOp::Field {
            key: key.into(),
            field: field.into(),
            value: None,
        }
    }

    fn key(&self) -> &str {
        match self {
            TxnOp::Put { key, .. }
            | TxnOp::Delete { key, .. }
            | TxnOp::Get { key, .. }
            | TxnOp::Incr { key, .. }
            | TxnOp::Member { key, .. }
            | TxnOp::Field { key, .. } => key,
        }
    }

    /// The operation's name in the API.
    fn name(&self) -> &'static str {
        match self {
            TxnOp::Put { .. } => "put",
            TxnOp::Delete { .. } => "delete",
            TxnOp::Get { .. } => "get",
            TxnOp::Incr { .. } => "incr",
            TxnOp::Member { present: true, .. } => "add_member",
            TxnOp::Member { present: false, .. } => "remove_member",
            TxnOp::Field { value: Some(_), .. } => "put_field",
            TxnOp::Field { value: None, .. } => "delete_field",
        }
    }

    fn to_json(&self) -> Result<Json> {
        let key = Key::parse(self.key())?;
        let mut op = Map::new();
        let mut set = |name: &str, value: Json| op.insert(name.to_owned(), value);
        set("op", json!(self.name()));
        set("key", json!(key.as_str()));
        match self {
            TxnOp::Put { value, ttl, .. } => {
                check_value(value)?;
                set("type", json!(value.value_type().name()));
                set("value", value.to_json());
                if let Some(ttl) = ttl {
                    set("ttl", json!(ttl_seconds(*ttl)?));
                }
            }
            TxnOp::Delete { ty, .. } | TxnOp::Get { ty, .. } => {
                set("type", json!(ty.name()));
            }
            TxnOp::Incr { by, .. } => {
                set("by", json!(by));
            }
            TxnOp::Member { member, .. } => {
                set("member", json!(member));
            }
            TxnOp::Field { field, value, .. } => {
                set("field", json!(field));
                if let Some(value) = value {
                    set("value", json!(value));
                }
            }
        }
        Ok(Json::Object(op))
    }

    /// This operation's result in the server's answer.
    fn result(&self, answer: &Json) -> Result<TxnResult> {
        let bad = || {
            Error::Decode(format!(
                "not a result of a {} operation: {answer}",
                self.name()
            ))
        };
        let member = |name: &str| answer.get(name).ok_or_else(bad);
        let flag = |name: &str| member(name)?.as_bool().ok_or_else(bad);
        Ok(match self {
            TxnOp::Put { .. } => TxnResult::Put {
                revision: member("revision")?.as_u64().ok_or_else(bad)?,
            },
            TxnOp::Delete { .. } => TxnResult::Deleted(flag("deleted")?),
            TxnOp::Get { ty, .. } => {
                if answer.get("absent").and_then(Json::as_bool) == Some(true) {
                    TxnResult::Got(None)
                } else {
                    let value = Value::from_json(*ty, member("value")?)
                        .map_err(|e| Error::Decode(format!("{e}: {answer}")))?;
                    let revision = member("revision")?.as_u64().ok_or_else(bad)?;
                    TxnResult::Got(Some(Revised {
                        value,
                        revision,
                        created: None,
                        expires_at: None,
                    }))
                }
            }
            TxnOp::Incr { .. } => {
                let after = member("value")?.as_i64().ok_or_else(bad)?;
                TxnResult::Incremented(i32::try_from(after).map_err(|_| bad())?)
            }
            TxnOp::Member { .. } | TxnOp::Field { .. } => TxnResult::Changed(flag("changed")?),
        })
    }
}

/// What one operation of a transaction did.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnResult {
    /// A put: the key's new revision (the transaction's).
    Put {
        /// The revision.
        revision: u64,
    },
    /// A delete: whether the key existed.
    Deleted(bool),
    /// A get: the value with its revision, `None` when absent
    /// (`expires_at` is not reported here).
    Got(Option<Revised<Value>>),
    /// An increment: the value after.
    Incremented(i32),
    /// A member or field operation: whether it changed the key.
    Changed(bool),
}

/// The server's answer to a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnOutcome {
    /// Whether every compare held, so `success` ran (else `failure`).
    pub succeeded: bool,
    /// The transaction's revision: that of all its changes, or the store's
    /// revision it read when it changed nothing.
    pub revision: u64,
    /// One result per operation of the branch that ran, in order.
    pub results: Vec<TxnResult>,
}

/// A transaction being built; [`Client::txn`] starts one and
/// [`Txn::send`] runs it.
///
/// ```no_run
/// # async fn run(kvs: kvs_client::Client) -> Result<(), kvs_client::Error> {
/// use kvs_client::{Compare, TxnOp, TxnResult, Value, ValueType};
///
/// // Moves 10 from a to b if a is still at the revision read.
/// let a = kvs.get_revised(ValueType::Int, "a").await?.expect("a exists");
/// let Value::Int(amount) = a.value else { unreachable!() };
/// let outcome = kvs
///     .txn()
///     .compare(Compare::revision(ValueType::Int, "a", a.revision))
///     .success(TxnOp::put("a", Value::Int(amount - 10)))
///     .success(TxnOp::incr("b", 10))
///     .failure(TxnOp::get(ValueType::Int, "a"))
///     .send()
///     .await?;
/// if !outcome.succeeded {
///     // results[0] is the failure branch's get: a's value now.
///     assert!(matches!(outcome.results[0], TxnResult::Got(_)));
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a transaction does nothing until it is sent"]
pub struct Txn<'c> {
    client: &'c Client,
    compare: Vec<Compare>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
}

impl Txn<'_> {
    /// Adds a compare: `success` runs only if all of them hold.
    pub fn compare(mut self, compare: Compare) -> Self {
        self.compare.push(compare);
        self
    }

    /// Adds an operation to run when every compare holds.
    pub fn success(mut self, op: TxnOp) -> Self {
        self.success.push(op);
        self
    }

    /// Adds an operation to run when a compare does not hold.
    pub fn failure(mut self, op: TxnOp) -> Self {
        self.failure.push(op);
        self
    }

    /// `POST /txn`: runs the transaction, atomically, at one revision.
    ///
    /// Keys, floats and TTLs are checked before anything is sent. An
    /// operation that fails (an increment that would overflow: 409
    /// [`Error::is_conflict`]; a value over the limits or more operations
    /// than the server's `--max-txn-ops`: 413; a bad value: 400) fails the
    /// whole transaction, which then changes nothing; the error's detail
    /// names the operation.
    pub async fn send(self) -> Result<TxnOutcome> {
        let ops = |ops: &[TxnOp]| ops.iter().map(TxnOp::to_json).collect::<Result<Vec<_>>>();
        let body = json!({
            "compare": self.compare.iter().map(Compare::to_json).collect::<Result<Vec<_>>>()?,
            "success": ops(&self.success)?,
            "failure": ops(&self.failure)?,
        });
        let req = self
            .client
            .http
            .post(self.client.url(&["txn"]))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let body = self.client.send(req).await?.bytes().await?;
        let answer: Json = serde_json::from_slice(&body).map_err(|e| {
            Error::Decode(format!(
                "a transaction's answer must be JSON ({e}): {}",
                quote(&body)
            ))
        })?;
        let bad = |what: &str| Error::Decode(format!("a transaction's answer {what}: {answer}"));
        let succeeded = answer["succeeded"]
            .as_bool()
            .ok_or_else(|| bad("lacks succeeded"))?;
        let revision = answer["revision"]
            .as_u64()
            .ok_or_else(|| bad("lacks revision"))?;
        let ran = if succeeded {
            &self.success
        } else {
            &self.failure
        };
        let results = answer["results"]
            .as_array()
            .filter(|results| results.len() == ran.len())
            .ok_or_else(|| bad("must have one result per operation run"))?;
        Ok(TxnOutcome {
            succeeded,
            revision,
            results: ran
                .iter()
                .zip(results)
                .map(|(op, result)| op.result(result))
                .collect::<Result<_>>()?,
        })
    }
}

impl Client {
    /// Starts a multi-key transaction (`POST /txn`); see [`Txn`].
    pub fn txn(&self) -> Txn<'_> {
        Txn {
            client: self,
            compare: Vec::new(),
            success: Vec::new(),
            failure: Vec::new(),
        }
    }
}
