//! What to send: the workloads, the key space and its distribution, and the
//! per-connection generator of requests.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::Zipf;
use serde::Serialize;

/// The API's base path, which every request's path starts with.
pub const BASE_PATH: &str = "/kvs/v1-0-0";

/// The skew of the zipfian distribution: YCSB's default, which the reports
/// compare with.
pub const ZIPF_THETA: f64 = 0.99;

/// The operation mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// GET or PUT of the value type, reads in the proportion `--read-ratio`
    /// (1 for GETs only, 0 for PUTs only).
    Mixed,
    /// `POST /int/{key}/incr` (no body: add 1).
    Incr,
    /// `PUT /map/{key}/{field}` with a string of `--value-size` bytes, the
    /// field one of the spec's `fields` per key.
    MapField,
    /// `PUT /set/{key}/{member}`, the member one of the spec's `fields`.
    SetAdd,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Mixed => "mixed",
            WorkloadKind::Incr => "incr",
            WorkloadKind::MapField => "map-field",
            WorkloadKind::SetAdd => "set-add",
        }
    }
}

/// The value type of `mixed` (a namespace of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// Text of exactly `value_size` bytes (letters and digits).
    Str,
    /// A random `i32`.
    Int,
    /// A random `u32`.
    Uint,
    /// A random finite `f32`.
    Float,
}

impl ValueKind {
    /// The route segment of this type.
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Str => "str",
            ValueKind::Int => "int",
            ValueKind::Uint => "uint",
            ValueKind::Float => "float",
        }
    }
}

/// How keys are picked from the key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Zipfian of skew [`ZIPF_THETA`]: key 0 the most popular.
    Zipf,
}

/// Everything that decides which requests are sent.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
    pub value_type: ValueKind,
    /// Size of the key space: keys are numbered `0..keys`.
    pub keys: u64,
    pub dist: KeyDist,
    /// Bytes of each string value (str, map field).
    pub value_size: usize,
    /// Share of GETs in `mixed`, `0.0..=1.0`.
    pub read_ratio: f64,
    /// Distinct map fields / set members per key (`map-field`, `set-add`).
    pub fields: u64,
    /// Keys are this prefix followed by the key number.
    pub key_prefix: String,
    /// When set, the number is zero-padded so that every key has exactly
    /// this many bytes.
    pub key_size: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    #[error("--keys must be at least 1")]
    NoKeys,
    #[error("--read-ratio must be between 0.0 and 1.0; got {0}")]
    BadReadRatio(f64),
    #[error("at least 1 field per key is needed")]
    NoFields,
    #[error("--key-size {size} is too small for {keys} keys (needs at least {needed})")]
    KeySizeTooSmall {
        size: usize,
        keys: u64,
        needed: usize,
    },
    #[error("--key-size must be at most 256 (the server's key limit)")]
    KeySizeTooLarge,
}

impl WorkloadSpec {
    /// A `mixed` load of strings over `keys` uniform keys, with the defaults
    /// of the command line otherwise.
    pub fn new(kind: WorkloadKind, keys: u64) -> WorkloadSpec {
        WorkloadSpec {
            kind,
            value_type: ValueKind::Str,
            keys,
            dist: KeyDist::Uniform,
            value_size: 32,
            read_ratio: 0.9,
            fields: 16,
            key_prefix: "k".into(),
            key_size: None,
        }
    }

    /// Checks the parameters and prepares what generators share.
    pub fn build(self) -> Result<Arc<Workload>, WorkloadError> {
        if self.keys == 0 {
            return Err(WorkloadError::NoKeys);
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err(WorkloadError::BadReadRatio(self.read_ratio));
        }
        if self.fields == 0 {
            return Err(WorkloadError::NoFields);
        }
        if let Some(size) = self.key_size {
            if size > kvs_core::key::MAX_KEY_LEN {
                return Err(WorkloadError::KeySizeTooLarge);
            }
            let needed = self.key_prefix.len() + (self.keys - 1).to_string().len();
            if size < needed {
                return Err(WorkloadError::KeySizeTooSmall {
                    size,
                    keys: self.keys,
                    needed,
                });
            }
        }
        let zipf = match self.dist {
            KeyDist::Uniform => None,
            KeyDist::Zipf => {
                Some(Zipf::new(self.keys as f64, ZIPF_THETA).expect("a valid zipfian skew"))
            }
        };
        Ok(Arc::new(Workload { spec: self, zipf }))
    }
}

/// A checked [`WorkloadSpec`] with its precomputed distribution.
#[derive(Debug)]
pub struct Workload {
    pub spec: WorkloadSpec,
    /// Over ranks 1..=keys; rank 1 is key 0, the most popular.
    zipf: Option<Zipf<f64>>,
}

/// Whether a request reads or writes (latencies are kept apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    Read,
    Write,
}

/// One request to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub method: Method,
    /// Origin-form path, base path included.
    pub path: String,
    pub body: Bytes,
    pub class: OpClass,
}

/// The request stream `stream` of `seed`: both go into the generator's
/// seed side by side, so that every pair has a stream of its own.
fn stream_rng(seed: u64, stream: u64) -> StdRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&stream.to_le_bytes());
    StdRng::from_seed(bytes)
}

/// Slack at the end of the value pool, so that values start at varying
/// offsets and differ from one request to the next without copying.
const POOL_SLACK: usize = 1024;

/// One connection's source of requests: deterministic for a seed and a
/// stream number.
#[derive(Debug)]
pub struct Generator {
    workload: Arc<Workload>,
    rng: StdRng,
    /// Random letters and digits; string values are slices of it.
    pool: Bytes,
}

impl Generator {
    pub fn new(workload: Arc<Workload>, seed: u64, stream: u64) -> Generator {
        let mut rng = stream_rng(seed, stream);
        let pool: Vec<u8> = (&mut rng)
            .sample_iter(Alphanumeric)
            .take(workload.spec.value_size + POOL_SLACK)
            .collect();
        Generator {
            workload,
            rng,
            pool: Bytes::from(pool),
        }
    }

    /// The next key number.
    pub fn next_key(&mut self) -> u64 {
        match &self.workload.zipf {
            None => self.rng.random_range(0..self.workload.spec.keys),
            Some(z) => self.rng.sample(z) as u64 - 1,
        }
    }

    /// The next request of the measured run.
    pub fn next_op(&mut self) -> Op {
        let spec = &self.workload.spec;
        let (kind, read_ratio, fields) = (spec.kind, spec.read_ratio, spec.fields);
        let key = self.next_key();
        match kind {
            WorkloadKind::Mixed => {
                // Draw the coin even at 0.0 and 1.0, so that the key
                // sequence does not depend on the ratio.
                if self.rng.random::<f64>() < read_ratio {
                    let path = self.path_for(self.workload.spec.value_type.name(), key);
                    self.op(Method::GET, path, Bytes::new(), OpClass::Read)
                } else {
                    self.write(key)
                }
            }
            WorkloadKind::Incr => {
                let path = self.path_for("int", key) + "/incr";
                self.op(Method::POST, path, Bytes::new(), OpClass::Write)
            }
            WorkloadKind::MapField => {
                let field = self.rng.random_range(0..fields);
                let path = format!("{}/f{field}", self.path_for("map", key));
                let body = self.string_value();
                self.op(Method::PUT, path, body, OpClass::Write)
            }
            WorkloadKind::SetAdd => {
                let member = self.rng.random_range(0..fields);
                let path = format!("{}/m{member}", self.path_for("set", key));
                self.op(Method::PUT, path, Bytes::new(), OpClass::Write)
            }
        }
    }

    /// The request that gives key `i` a value before the run, so that reads
    /// hit: a PUT of the workload's type (an int 0 for `incr`, a map with one
    /// field for `map-field`, a set with one member for `set-add`).
    pub fn prefill_op(&mut self, key: u64) -> Op {
        let (ty, body) = match self.workload.spec.kind {
            WorkloadKind::Mixed => return self.write(key),
            WorkloadKind::Incr => ("int", Bytes::from_static(b"0")),
            WorkloadKind::MapField => {
                // Letters and digits need no escaping in JSON.
                let s = self.string_value();
                let v = [&b"{\"f0\":\""[..], &s[..], &b"\"}"[..]].concat();
                ("map", Bytes::from(v))
            }
            WorkloadKind::SetAdd => ("set", Bytes::from_static(b"[\"m0\"]")),
        };
        let path = self.path_for(ty, key);
        self.op(Method::PUT, path, body, OpClass::Write)
    }

    fn op(&self, method: Method, path: String, body: Bytes, class: OpClass) -> Op {
        Op {
            method,
            path,
            body,
            class,
        }
    }

    fn write(&mut self, key: u64) -> Op {
        let ty = self.workload.spec.value_type;
        let body = match ty {
            ValueKind::Str => self.string_value(),
            ValueKind::Int => Bytes::from(self.rng.random::<i32>().to_string()),
            ValueKind::Uint => Bytes::from(self.rng.random::<u32>().to_string()),
            ValueKind::Float => {
                let x = (self.rng.random::<f64>() * 2.0 - 1.0) * 1e6;
                Bytes::from((x as f32).to_string())
            }
        };
        let path = self.path_for(ty.name(), key);
        self.op(Method::PUT, path, body, OpClass::Write)
    }

    /// `value_size` random letters and digits, shared with the pool.
    fn string_value(&mut self) -> Bytes {
        let size = self.workload.spec.value_size;
        let start = self.rng.random_range(0..=POOL_SLACK);
        self.pool.slice(start..start + size)
    }

    fn path_for(&self, ty: &str, key: u64) -> String {
        let spec = &self.workload.spec;
        let mut path = format!("{BASE_PATH}/{ty}/");
        key_name(&spec.key_prefix, spec.key_size, key, &mut path);
        path
    }
}

/// Appends the name of key number `i` to `out`: `prefix` and the number,
/// zero-padded to `key_size` bytes in all when that is given.
fn key_name(prefix: &str, key_size: Option<usize>, i: u64, out: &mut String) {
    out.push_str(prefix);
    let width = key_size.map_or(0, |size| size.saturating_sub(prefix.len()));
    let _ = write!(out, "{i:0width$}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(spec: WorkloadSpec, seed: u64, stream: u64) -> Generator {
        Generator::new(spec.build().unwrap(), seed, stream)
    }

    #[test]
    fn validates_parameters() {
        assert_eq!(
            WorkloadSpec::new(WorkloadKind::Mixed, 0)
                .build()
                .unwrap_err(),
            WorkloadError::NoKeys
        );
        let mut s = WorkloadSpec::new(WorkloadKind::Mixed, 10);
        s.read_ratio = 1.5;
        assert!(matches!(
            s.build().unwrap_err(),
            WorkloadError::BadReadRatio(_)
        ));
        let mut s = WorkloadSpec::new(WorkloadKind::Mixed, 1_000_000);
        s.key_size = Some(6); // "k" + 6 digits = 7
        assert!(matches!(
            s.build().unwrap_err(),
            WorkloadError::KeySizeTooSmall { needed: 7, .. }
        ));
        let mut s = WorkloadSpec::new(WorkloadKind::Mixed, 10);
        s.key_size = Some(257);
        assert_eq!(s.build().unwrap_err(), WorkloadError::KeySizeTooLarge);
        let mut s = WorkloadSpec::new(WorkloadKind::SetAdd, 10);
        s.fields = 0;
        assert_eq!(s.build().unwrap_err(), WorkloadError::NoFields);
    }

    #[test]
    fn key_names_are_padded_to_key_size() {
        let mut out = String::new();
        key_name("k", None, 42, &mut out);
        assert_eq!(out, "k42");
        out.clear();
        key_name("k", Some(16), 42, &mut out);
        assert_eq!(out, "k000000000000042");
        assert_eq!(out.len(), 16);
        out.clear();
        key_name("k", Some(16), 999_999, &mut out);
        assert_eq!(out.len(), 16);
        let mut s = WorkloadSpec::new(WorkloadKind::Mixed, 1_000_000);
        s.key_size = Some(16);
        let mut g = generator(s, 1, 0);
        let op = g.prefill_op(7);
        assert_eq!(op.path, "/kvs/v1-0-0/str/k000000000000007");
    }

    #[test]
    fn requests_have_the_right_shape() {
        let mut s = WorkloadSpec::new(WorkloadKind::Mixed, 10);
        s.value_size = 100;
        s.read_ratio = 0.0;
        let mut g = generator(s, 1, 0);
        let op = g.next_op();
        assert_eq!((op.method, op.class), (Method::PUT, OpClass::Write));
        assert!(op.path.starts_with("/kvs/v1-0-0/str/k"), "{}", op.path);
        assert_eq!(op.body.len(), 100);
        assert!(op.body.iter().all(u8::is_ascii_alphanumeric));

        let mut s = WorkloadSpec::new(WorkloadKind::Mixed, 10);
        s.read_ratio = 1.0;
        let op = generator(s, 1, 0).next_op();
        assert_eq!((op.method, op.class), (Method::GET, OpClass::Read));
        assert!(op.body.is_empty());

        let op = generator(WorkloadSpec::new(WorkloadKind::Incr, 10), 1, 0).next_op();
        assert_eq!(op.method, Method::POST);
        assert!(op.path.starts_with("/kvs/v1-0-0/int/k") && op.path.ends_with("/incr"));

        let op = generator(WorkloadSpec::new(WorkloadKind::MapField, 10), 1, 0).next_op();
        let rest = op.path.strip_prefix("/kvs/v1-0-0/map/k").unwrap();
        assert!(rest.contains("/f"), "{}", op.path);
        assert_eq!(op.body.len(), 32);

        let op = generator(WorkloadSpec::new(WorkloadKind::SetAdd, 10), 1, 0).next_op();
        assert!(op.path.starts_with("/kvs/v1-0-0/set/k") && op.path.contains("/m"));

        for (ty, check) in [
            (
                ValueKind::Int,
                (|b: &str| b.parse::<i32>().is_ok()) as fn(&str) -> bool,
            ),
            (ValueKind::Uint, |b| b.parse::<u32>().is_ok()),
            (ValueKind::Float, |b| {
                b.parse::<f32>().is_ok_and(f32::is_finite)
            }),
        ] {
            let mut s = WorkloadSpec::new(WorkloadKind::Mixed, 10);
            s.value_type = ty;
            s.read_ratio = 0.0;
            let mut g = generator(s, 1, 0);
            for _ in 0..100 {
                let op = g.next_op();
                let body = std::str::from_utf8(&op.body).unwrap();
                assert!(check(body), "{ty:?}: {body}");
                assert!(op.path.contains(&format!("/{}/", ty.name())));
            }
        }
    }

    #[test]
    fn prefill_writes_the_workloads_type() {
        for (kind, path) in [
            (WorkloadKind::Mixed, "/kvs/v1-0-0/str/k7"),
            (WorkloadKind::Incr, "/kvs/v1-0-0/int/k7"),
            (WorkloadKind::MapField, "/kvs/v1-0-0/map/k7"),
            (WorkloadKind::SetAdd, "/kvs/v1-0-0/set/k7"),
        ] {
            let op = generator(WorkloadSpec::new(kind, 10), 1, 0).prefill_op(7);
            assert_eq!(op.method, Method::PUT);
            assert_eq!(op.path, path);
        }
        let op = generator(WorkloadSpec::new(WorkloadKind::MapField, 10), 1, 0).prefill_op(7);
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_slice(&op.body).unwrap();
        assert_eq!(map["f0"].len(), 32);
    }

    #[test]
    fn uniform_covers_the_key_space_evenly() {
        let mut g = generator(WorkloadSpec::new(WorkloadKind::Mixed, 1000), 99, 0);
        let draws = 200_000;
        let mut counts = vec![0u32; 1000];
        for _ in 0..draws {
            counts[g.next_key() as usize] += 1;
        }
        let mean = draws as f64 / 1000.0;
        assert!(counts.iter().all(|&c| c > 0), "every key is drawn");
        for (i, &c) in counts.iter().enumerate() {
            assert!(
                (f64::from(c) - mean).abs() < mean * 0.3,
                "key {i}: {c} vs {mean}"
            );
        }
    }

    #[test]
    fn zipf_keys_are_skewed() {
        let mut s = WorkloadSpec::new(WorkloadKind::Mixed, 1000);
        s.dist = KeyDist::Zipf;
        let mut g = generator(s, 3, 0);
        let draws = 100_000;
        let hot = (0..draws).filter(|_| g.next_key() == 0).count();
        let share = hot as f64 / draws as f64;
        let zeta: f64 = (1..=1000).map(|k| 1.0 / f64::from(k).powf(0.99)).sum();
        let expected = 1.0 / zeta;
        assert!(
            (share - expected).abs() < expected * 0.05,
            "{share} vs {expected}"
        );
    }

    #[test]
    fn same_seed_and_stream_give_the_same_requests() {
        for kind in [WorkloadKind::Mixed, WorkloadKind::MapField] {
            let mut s = WorkloadSpec::new(kind, 10_000);
            s.dist = KeyDist::Zipf;
            let w = s.build().unwrap();
            let mut a = Generator::new(w.clone(), 42, 3);
            let mut b = Generator::new(w.clone(), 42, 3);
            let mut c = Generator::new(w.clone(), 42, 4);
            let mut d = Generator::new(w, 43, 3);
            let xs: Vec<Op> = (0..500).map(|_| a.next_op()).collect();
            let ys: Vec<Op> = (0..500).map(|_| b.next_op()).collect();
            let zs: Vec<Op> = (0..500).map(|_| c.next_op()).collect();
            let ws: Vec<Op> = (0..500).map(|_| d.next_op()).collect();
            assert_eq!(xs, ys);
            assert_ne!(xs, zs, "streams differ");
            assert_ne!(xs, ws, "seeds differ");
        }
    }

    #[test]
    fn mixed_follows_the_read_ratio() {
        for ratio in [0.0, 0.1, 0.5, 0.9, 1.0] {
            let mut s = WorkloadSpec::new(WorkloadKind::Mixed, 1000);
            s.read_ratio = ratio;
            let mut g = generator(s, 5, 0);
            let n = 50_000;
            let reads = (0..n)
                .filter(|_| {
                    let op = g.next_op();
                    assert_eq!(op.method == Method::GET, op.class == OpClass::Read);
                    op.class == OpClass::Read
                })
                .count();
            let share = reads as f64 / n as f64;
            assert!((share - ratio).abs() < 0.01, "ratio {ratio}: {share}");
        }
    }
}
