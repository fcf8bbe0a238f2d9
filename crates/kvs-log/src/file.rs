//! The file backend: one append-only file of checksummed frames.
//!
//! Layout and recovery rules are written down in `docs/file-log.md`. Writes
//! are batched by the caller and made durable with one `fdatasync` per
//! batch. Compaction runs on a thread of its own over the part of the file
//! that is already durable, while appends go on. What was appended in the
//! meantime is copied after the live set, by the compaction thread while
//! that tail is large and by the swap-in for the last of it, in chunks: a
//! long tail never sits in memory, and the writes wait only for a short one.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_core::change::UNSTAMPED;
use kvs_core::{Change, Key, Revisions};
use parking_lot::Mutex;
use tokio::task::spawn_blocking;

use crate::codec::{self, HEADER_LEN, MAX_PAYLOAD_LEN, MIN_PAYLOAD_LEN, Record};
use crate::live::LiveSet;
use crate::{
    Log, LogError, LogReader, NoLease, ReplayStats, ReplayStream, Window, WriterLog, WriterMark,
};

/// The first bytes of every log file: a name and a format version.
pub const MAGIC: &[u8; 8] = b"KVSLOG\x00\x01";
const MAGIC_LEN: u64 = MAGIC.len() as u64;

#[derive(Debug, Clone)]
pub struct FileOptions {
    /// At a corrupt record, drop it and everything after it instead of
    /// refusing to open the log.
    pub truncate_corrupt: bool,
    /// Compact once the file is larger than this and more than twice as
    /// large as it was after the last compaction.
    pub compact_min_bytes: u64,
}

impl Default for FileOptions {
    fn default() -> FileOptions {
        FileOptions {
            truncate_corrupt: false,
            compact_min_bytes: 64 << 20,
        }
    }
}

/// The file log. Blocking work runs on tokio's blocking pool, so the
/// runtime's workers keep serving while a batch is fsynced.
pub struct FileLog {
    path: PathBuf,
    opts: FileOptions,
    /// Taken while a blocking operation owns it.
    inner: Option<Inner>,
    /// Reused between batches so that encoding does not allocate.
    buf: Vec<u8>,
}

struct Inner {
    file: File,
    /// Bytes that are valid and durable; `None` until the file was scanned.
    len: Option<u64>,
    /// Size after the last compaction (or at start-up): the growth measure.
    base_len: u64,
    /// An append failed and `recover` has not cut its remains off yet.
    dirty: bool,
    compaction: Option<JoinHandle<Result<Compacted, LogError>>>,
    /// Each writer's durable sequence.
    marks: HashMap<Key, Mark>,
    /// Marks logged before this (ms since the Unix epoch) are forgotten,
    /// and compactions leave them out.
    forget_before_ms: u64,
    /// The durable length readers may read up to; `None` before the first
    /// scan. Locked across a compaction's rename, so that a reader never
    /// pairs one file with the other's length.
    published: Arc<Mutex<Option<u64>>>,
    /// The latest changes, for followers; only if asked for
    /// ([`FileLog::keep_changes`]).
    window: Option<Window>,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    sequence: u64,
    /// When it was logged, or for a mark without a time, read.
    at_ms: u64,
}

impl Mark {
    fn read(sequence: u64, at_ms: u64) -> Mark {
        Mark {
            sequence,
            at_ms: if at_ms == 0 { now_ms() } else { at_ms },
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Compacted {
    tmp: PathBuf,
    /// The old file's bytes `..upto` are folded into `tmp`.
    upto: u64,
    len: u64,
    records: u64,
}

/// How a scan of the file ended.
enum ScanEnd {
    Clean,
    /// A crash in the middle of a write: the last record is incomplete.
    Torn(u64),
    Corrupt {
        offset: u64,
        reason: String,
    },
}

impl FileLog {
    /// Opens (or creates) the log at `path`. Nothing is read beyond the
    /// header until [`Log::replay`].
    pub fn open(path: impl Into<PathBuf>, opts: FileOptions) -> Result<FileLog, LogError> {
        let path = path.into();
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(LogError::io(format!("creating {}", dir.display())))?;
        }
        let stale = tmp_path(&path);
        if stale.exists() {
            fs::remove_file(&stale)
                .map_err(LogError::io(format!("removing {}", stale.display())))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(LogError::io(format!("opening {shown}")))?;
        let len = file
            .metadata()
            .map_err(LogError::io(format!("reading {shown}")))?
            .len();
        let mut head = [0u8; MAGIC.len()];
        let got =
            read_up_to(&file, 0, &mut head).map_err(LogError::io(format!("reading {shown}")))?;
        if got < MAGIC.len() && MAGIC.starts_with(&head[..got]) {
            // New, or the crash came while the header itself was written.
            file.set_len(0)
                .map_err(LogError::io(format!("truncating {shown}")))?;
            (&file)
                .write_all(MAGIC)
                .map_err(LogError::io(format!("writing {shown}")))?;
            file.sync_all()
                .map_err(LogError::io(format!("syncing {shown}")))?;
            sync_dir(&path)?;
        } else if &head != MAGIC {
            return Err(LogError::Corrupt {
                path: shown,
                offset: 0,
                reason: format!(
                    "not a KVS log file (it is {len} bytes and does not start with the KVS header)"
                ),
            });
        }
        Ok(FileLog {
            path,
            opts,
            inner: Some(Inner {
                file,
                len: None,
                base_len: 0,
                dirty: false,
                compaction: None,
                marks: HashMap::new(),
                forget_before_ms: 0,
                published: Arc::default(),
                window: None,
            }),
            buf: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the changes of the last `keep` revisions in memory for
    /// followers ([`WriterLog::feed`]): filled by the replay (those after
    /// the last compaction), then by every append through
    /// [`WriterLog::append_marked`]. Without it the log keeps none, as
    /// kvs-server's own log needs none.
    pub fn keep_changes(mut self, keep: u64) -> FileLog {
        if let Some(inner) = self.inner.as_mut() {
            inner.window = Some(Window::new(keep));
        }
        self
    }

    fn window(&self) -> Option<&Window> {
        self.inner.as_ref().and_then(|i| i.window.as_ref())
    }

    /// Runs `op` on the blocking pool with the file state, and puts the state
    /// back afterwards.
    async fn blocking<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut Inner, &Path, &FileOptions) -> T + Send + 'static,
    ) -> Result<T, LogError> {
        let mut inner = self.inner.take().ok_or_else(|| {
            LogError::Unavailable("an earlier file operation did not finish".into())
        })?;
        let path = self.path.clone();
        let opts = self.opts.clone();
        let (inner, out) = spawn_blocking(move || {
            let out = op(&mut inner, &path, &opts);
            (inner, out)
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("file log task failed: {e}")))?;
        self.inner = Some(inner);
        Ok(out)
    }
}

impl Drop for FileLog {
    /// A compaction still running would write its file after a new
    /// `FileLog` on the same path has started, and could be swapped in by
    /// it: wait for the thread and throw its result away.
    fn drop(&mut self) {
        if let Some(handle) = self.inner.as_mut().and_then(|i| i.compaction.take()) {
            let _ = handle.join();
            let _ = fs::remove_file(tmp_path(&self.path));
        }
    }
}

impl Log for FileLog {
    async fn replay(
        &mut self,
        mut visit: impl FnMut(Change) + Send + 'static,
    ) -> Result<ReplayStats, LogError> {
        self.blocking(move |inner, path, opts| inner.replay(path, opts, &mut visit))
            .await?
    }

    async fn append(&mut self, batch: &[Change]) -> Result<(), LogError> {
        self.write(batch, &[]).await
    }

    async fn recover(&mut self) -> Result<Vec<Change>, LogError> {
        WriterLog::recover(self).await?;
        // A failed batch is cut off the file: none of it is durable.
        Ok(Vec::new())
    }
}

impl WriterLog for FileLog {
    type Reader = FileReader;

    /// Streams the log as it is when asked, while appends go on.
    fn reader(&self) -> FileReader {
        FileReader {
            path: self.path.clone(),
            published: self
                .inner
                .as_ref()
                .map(|i| i.published.clone())
                .unwrap_or_default(),
        }
    }

    type Feed = Window;

    /// The window of [`FileLog::keep_changes`]; without one, a window never
    /// filled.
    fn feed(&self) -> Window {
        self.window().cloned().unwrap_or_else(|| Window::new(0))
    }

    type Lease = NoLease;

    fn lease(&self) -> NoLease {
        NoLease
    }

    async fn append_marked(
        &mut self,
        batch: &[Change],
        marks: &[WriterMark],
        epoch: u64,
    ) -> Result<(), LogError> {
        NoLease::fence(epoch)?;
        self.write(batch, marks).await?;
        if let Some(window) = self.window() {
            window.push(batch);
        }
        Ok(())
    }

    /// Cuts the remains of the failed batch off the file.
    async fn recover(&mut self) -> Result<(), LogError> {
        self.blocking(|inner, path, _| inner.recover(path)).await?
    }

    async fn writer_sequence(&mut self, writer: &Key) -> Result<u64, LogError> {
        let inner = self.inner.as_ref().ok_or_else(|| {
            LogError::Unavailable("an earlier file operation did not finish".into())
        })?;
        Ok(inner.marks.get(writer).map_or(0, |m| m.sequence))
    }

    /// Forgets the marks logged more than `idle` ago at once; the next
    /// compaction leaves them out of the file.
    async fn forget_writers(&mut self, idle: Duration) -> Result<u64, LogError> {
        let inner = self.inner.as_mut().ok_or_else(|| {
            LogError::Unavailable("an earlier file operation did not finish".into())
        })?;
        let horizon = now_ms().saturating_sub(idle.as_millis() as u64);
        let before = inner.marks.len();
        inner.marks.retain(|_, m| m.at_ms >= horizon);
        inner.forget_before_ms = inner.forget_before_ms.max(horizon);
        Ok((before - inner.marks.len()) as u64)
    }
}

impl FileLog {
    /// Makes `batch` and `marks` durable: one fsync.
    async fn write(&mut self, batch: &[Change], marks: &[WriterMark]) -> Result<(), LogError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        // One frame per revision, so that a torn write keeps all of a
        // revision or none; a change without one has a frame of its own.
        for run in batch.chunk_by(|a, b| a.revision == b.revision) {
            let encoded = match run[0].revision {
                UNSTAMPED => run.iter().try_for_each(|c| codec::encode(&c.txn, &mut buf)),
                revision => codec::encode_group(revision, run.iter().map(|c| &c.txn), &mut buf),
            };
            encoded.map_err(LogError::TooLarge)?;
        }
        let at_ms = now_ms();
        for mark in marks {
            codec::encode_mark(mark, at_ms, &mut buf).map_err(LogError::TooLarge)?;
        }
        let marks = marks.to_vec();
        let (buf, result) = self
            .blocking(move |inner, path, opts| {
                let result = inner.append(path, opts, &buf);
                if result.is_ok() {
                    for m in marks {
                        inner.marks.insert(
                            m.writer,
                            Mark {
                                sequence: m.sequence,
                                at_ms,
                            },
                        );
                    }
                }
                (buf, result)
            })
            .await?;
        self.buf = buf;
        result
    }
}

impl Inner {
    fn replay(
        &mut self,
        path: &Path,
        opts: &FileOptions,
        visit: &mut dyn FnMut(Change),
    ) -> Result<ReplayStats, LogError> {
        let shown = path.display().to_string();
        let end = self
            .file
            .metadata()
            .map_err(LogError::io(format!("reading {shown}")))?
            .len();
        let marks = &mut self.marks;
        let window = self.window.as_ref();
        let mut revisions = Revisions::default();
        let mut records = 0;
        // Only a compaction writes a group without changes, after the live
        // set it folded: the history is whole after the last one.
        let mut history_from = UNSTAMPED;
        let mut visit_record = |r: Record| match r {
            Record::Mark(m, at_ms) => {
                marks.insert(m.writer, Mark::read(m.sequence, at_ms));
                ControlFlow::Continue(())
            }
            r => {
                if let Record::Group { revision, txns } = &r
                    && txns.is_empty()
                {
                    history_from = *revision;
                    if let Some(window) = window {
                        window.restart_at(*revision);
                    }
                }
                // Followers get only the changes logged with a revision.
                let window = window.filter(|_| matches!(r, Record::Group { .. }));
                each_change(r, &mut revisions, &mut |change| {
                    records += 1;
                    if let Some(window) = window {
                        window.push(std::slice::from_ref(&change));
                    }
                    visit(change);
                    ControlFlow::Continue(())
                })
            }
        };
        let scan_end = scan(&self.file, end, &mut visit_record)
            .map_err(LogError::io(format!("reading {shown}")))?;
        if let Some(window) = window {
            window.raise_head(revisions.head());
        }
        let mut stats = ReplayStats {
            records,
            head: revisions.head(),
            history_from,
            bytes: end,
            ..ReplayStats::default()
        };
        let valid = match scan_end {
            ScanEnd::Clean => end,
            ScanEnd::Torn(offset) => {
                tracing::warn!(log = %shown, offset, dropped = end - offset, "dropping a torn last record");
                stats.torn_bytes = end - offset;
                offset
            }
            ScanEnd::Corrupt { offset, reason } if opts.truncate_corrupt => {
                tracing::warn!(log = %shown, offset, %reason, dropped = end - offset, "truncating the log at a corrupt record");
                stats.corrupt_bytes = end - offset;
                offset
            }
            ScanEnd::Corrupt { offset, reason } => {
                return Err(LogError::Corrupt {
                    path: shown,
                    offset,
                    reason,
                });
            }
        };
        if valid < end {
            self.file
                .set_len(valid)
                .map_err(LogError::io(format!("truncating {shown}")))?;
            self.file
                .sync_all()
                .map_err(LogError::io(format!("syncing {shown}")))?;
        }
        self.len = Some(valid);
        self.base_len = valid;
        *self.published.lock() = Some(valid);
        Ok(stats)
    }

    fn append(&mut self, path: &Path, opts: &FileOptions, bytes: &[u8]) -> Result<(), LogError> {
        let shown = || path.display().to_string();
        if self.dirty {
            return Err(LogError::Unavailable(format!(
                "{} needs recovery after a failed write",
                shown()
            )));
        }
        let len = match self.len {
            Some(len) => len,
            None => {
                // Never scanned: find the valid end before writing after it.
                self.replay(path, opts, &mut |_| {})?;
                self.len.unwrap_or(MAGIC_LEN)
            }
        };
        self.finish_compaction(path);
        let len = self.len.unwrap_or(len);
        self.dirty = true;
        (&self.file)
            .write_all(bytes)
            .map_err(LogError::io(format!("writing {}", shown())))?;
        self.file
            .sync_data()
            .map_err(LogError::io(format!("syncing {}", shown())))?;
        self.dirty = false;
        let len = len + bytes.len() as u64;
        self.len = Some(len);
        *self.published.lock() = Some(len);
        if self.compaction.is_none() && len > opts.compact_min_bytes.max(2 * self.base_len) {
            let path = path.to_path_buf();
            tracing::info!(log = %path.display(), bytes = len, "compacting the log");
            let published = self.published.clone();
            let forget_before_ms = self.forget_before_ms;
            self.compaction = Some(std::thread::spawn(move || {
                compact(&path, len, &published, forget_before_ms)
            }));
        }
        Ok(())
    }

    fn recover(&mut self, path: &Path) -> Result<(), LogError> {
        let len = self.len.unwrap_or(MAGIC_LEN);
        let shown = path.display().to_string();
        self.file
            .set_len(len)
            .map_err(LogError::io(format!("truncating {shown}")))?;
        self.file
            .sync_all()
            .map_err(LogError::io(format!("syncing {shown}")))?;
        self.dirty = false;
        Ok(())
    }

    /// Swaps in a finished compaction: copies what was appended since it
    /// started, then renames it over the log.
    fn finish_compaction(&mut self, path: &Path) {
        if !self.compaction.as_ref().is_some_and(|h| h.is_finished()) {
            return;
        }
        let Some(handle) = self.compaction.take() else {
            return;
        };
        let len = self.len.unwrap_or(MAGIC_LEN);
        let swapped = match handle.join() {
            Ok(Ok(done)) => self
                .swap_in(path, &done, len)
                .map(|new_len| (done, new_len)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LogError::Unavailable("compaction thread panicked".into())),
        };
        match swapped {
            Ok((done, new_len)) => {
                tracing::info!(log = %path.display(), before = len, after = new_len, live = done.records, "compacted the log");
                self.len = Some(new_len);
                self.base_len = new_len;
            }
            Err(e) => {
                tracing::warn!(log = %path.display(), error = %e, "compaction failed; the log is unchanged");
                let _ = fs::remove_file(tmp_path(path));
                // Wait for the file to double again before the next attempt.
                self.base_len = len;
            }
        }
    }

    fn swap_in(&mut self, path: &Path, done: &Compacted, len: u64) -> Result<u64, LogError> {
        let shown = done.tmp.display().to_string();
        let mut tmp = OpenOptions::new()
            .append(true)
            .open(&done.tmp)
            .map_err(LogError::io(format!("opening {shown}")))?;
        copy_range(&self.file, done.upto..len, &mut tmp)
            .map_err(LogError::io(format!("copying the log's tail to {shown}")))?;
        tmp.sync_all()
            .map_err(LogError::io(format!("syncing {shown}")))?;
        let new_len = done.len + (len - done.upto);
        let mut published = self.published.lock();
        fs::rename(&done.tmp, path).map_err(LogError::io(format!("renaming {shown}")))?;
        *published = Some(new_len);
        sync_dir(path)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(LogError::io(format!("opening {}", path.display())))?;
        Ok(new_len)
    }
}

/// A tail the compaction thread leaves to the swap-in, which writes wait for.
const SWAP_IN_TAIL: u64 = 1 << 20;
/// Rounds of catching up after which the swap-in takes whatever is left, so
/// that writes faster than the copy cannot keep a compaction from ending.
const CATCH_UP_ROUNDS: usize = 8;

/// Copies the bytes `range` of `src` to `out`, a chunk at a time.
fn copy_range(src: &File, range: std::ops::Range<u64>, out: &mut impl Write) -> io::Result<()> {
    let mut chunk = vec![0u8; (range.end - range.start).min(1 << 20) as usize];
    let mut at = range.start;
    while at < range.end {
        let n = chunk.len().min((range.end - at) as usize);
        src.read_exact_at(&mut chunk[..n], at)?;
        out.write_all(&chunk[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// Folds the first `upto` bytes of the log into its live set and the marks
/// logged from `forget_before_ms` on, writes that to the temporary file
/// beside it, then copies what was made durable since, until less than
/// [`SWAP_IN_TAIL`] is left.
fn compact(
    path: &Path,
    upto: u64,
    published: &Mutex<Option<u64>>,
    forget_before_ms: u64,
) -> Result<Compacted, LogError> {
    let shown = path.display().to_string();
    let src = File::open(path).map_err(LogError::io(format!("opening {shown}")))?;
    let mut live = LiveSet::default();
    let mut revisions = Revisions::default();
    let mut marks = HashMap::new();
    let end = scan(&src, upto, &mut |r| match r {
        Record::Mark(m, at_ms) => {
            marks.insert(m.writer, Mark::read(m.sequence, at_ms));
            ControlFlow::Continue(())
        }
        r => each_change(r, &mut revisions, &mut |change| {
            live.apply(change);
            ControlFlow::Continue(())
        }),
    })
    .map_err(LogError::io(format!("reading {shown}")))?;
    let (offset, reason) = match end {
        ScanEnd::Clean => (None, String::new()),
        ScanEnd::Torn(offset) => (Some(offset), "record ends early".to_owned()),
        ScanEnd::Corrupt { offset, reason } => (Some(offset), reason),
    };
    if let Some(offset) = offset {
        return Err(LogError::Corrupt {
            path: shown,
            offset,
            reason,
        });
    }
    let tmp = tmp_path(path);
    let shown = tmp.display().to_string();
    let mut out =
        BufWriter::new(File::create(&tmp).map_err(LogError::io(format!("creating {shown}")))?);
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(MAGIC);
    let mut len = 0u64;
    let records = live.len() as u64;
    let puts = live.into_puts();
    for run in puts.chunk_by(|a, b| a.0 == b.0) {
        codec::encode_group(run[0].0, run.iter().map(|(_, put)| put), &mut buf)
            .map_err(LogError::TooLarge)?;
        if buf.len() >= 1 << 16 {
            out.write_all(&buf)
                .map_err(LogError::io(format!("writing {shown}")))?;
            len += buf.len() as u64;
            buf.clear();
        }
    }
    // The head, which the last changes (deletes, reads) may have left
    // without a record in the live set.
    if revisions.head() > UNSTAMPED {
        codec::encode_group(revisions.head(), [], &mut buf).map_err(LogError::TooLarge)?;
    }
    for (writer, mark) in marks {
        if mark.at_ms < forget_before_ms {
            continue;
        }
        let sequence = mark.sequence;
        codec::encode_mark(&WriterMark { writer, sequence }, mark.at_ms, &mut buf)
            .map_err(LogError::TooLarge)?;
    }
    out.write_all(&buf)
        .map_err(LogError::io(format!("writing {shown}")))?;
    len += buf.len() as u64;
    let mut upto = upto;
    for _ in 0..CATCH_UP_ROUNDS {
        let durable = published.lock().unwrap_or(upto);
        if durable < upto + SWAP_IN_TAIL {
            break;
        }
        copy_range(&src, upto..durable, &mut out)
            .map_err(LogError::io(format!("copying the log's tail to {shown}")))?;
        len += durable - upto;
        upto = durable;
    }
    let file = out
        .into_inner()
        .map_err(|e| LogError::io(format!("writing {shown}"))(e.into_error()))?;
    file.sync_all()
        .map_err(LogError::io(format!("syncing {shown}")))?;
    Ok(Compacted {
        tmp,
        upto,
        len,
        records,
    })
}

/// Hands each change `record` holds to `visit` with its revision (one
/// logged without gets it from `revisions`, in file order), and raises the
/// head to a group's revision even when the group holds no change. The one
/// reading of revisions for replay, readers and compaction alike.
fn each_change(
    record: Record,
    revisions: &mut Revisions,
    visit: &mut dyn FnMut(Change) -> ControlFlow<()>,
) -> ControlFlow<()> {
    match record {
        Record::Txn(txn) => {
            let mut change = Change::new(UNSTAMPED, txn);
            revisions.stamp(&mut change);
            visit(change)
        }
        Record::Group { revision, txns } => {
            *revisions = Revisions::after(revisions.head().max(revision));
            for txn in txns {
                let mut change = Change::new(revision, txn);
                revisions.stamp(&mut change);
                visit(change)?;
            }
            ControlFlow::Continue(())
        }
        Record::Mark(..) => ControlFlow::Continue(()),
    }
}

/// Reads the frames between the header and `end`, handing each record to
/// `visit`; returns how the scan ended.
fn scan(
    file: &File,
    end: u64,
    visit: &mut dyn FnMut(Record) -> ControlFlow<()>,
) -> io::Result<ScanEnd> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    io::copy(&mut (&mut reader).take(MAGIC_LEN), &mut io::sink())?;
    let mut offset = MAGIC_LEN;
    let mut payload = Vec::new();
    loop {
        if offset == end {
            return Ok(ScanEnd::Clean);
        }
        if end - offset < HEADER_LEN as u64 {
            return Ok(ScanEnd::Torn(offset));
        }
        let mut header = [0u8; HEADER_LEN];
        reader.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let frame_end = offset + (HEADER_LEN + len) as u64;
        if !(MIN_PAYLOAD_LEN..=MAX_PAYLOAD_LEN).contains(&len) || frame_end > end {
            return torn_or_corrupt(file, offset, end, len, "record runs past the end");
        }
        payload.resize(len, 0);
        reader.read_exact(&mut payload)?;
        if codec::checksum(&payload) != crc {
            return torn_or_corrupt(file, offset, end, len, "checksum mismatch");
        }
        match codec::decode(&payload) {
            Ok(record) => {
                if visit(record).is_break() {
                    return Ok(ScanEnd::Clean);
                }
            }
            Err(e) => {
                return Ok(ScanEnd::Corrupt {
                    offset,
                    reason: e.to_string(),
                });
            }
        }
        offset = frame_end;
    }
}

/// Zeros a crash leaves in place of data that did not land start at a
/// file-system block boundary (or at the old end of the file, a frame
/// boundary): blocks are allocated and written whole, and every block size
/// is a multiple of this.
const ZERO_FILL_ALIGN: u64 = 512;

/// Decides whether the bad frame at `offset`, whose length field reads
/// `len`, is a torn tail (see "Reading it back" in `docs/file-log.md`);
/// `whole_reason` is what is wrong with it if it is all in the file.
///
/// A crash leaves a prefix of the last batch, and possibly zeros from a
/// block boundary to the end of the file. So the bytes that may have landed
/// end where the trailing zeros could have begun (the first block boundary
/// in the run of zeros that ends the file, or the end of the file); the frame
/// is torn only if it reaches past that point and the bytes before it could
/// begin this very frame: a length in range that its payload, by its own
/// structure, agrees with. A damaged length fails that test wherever the
/// frame is, because the real payload is there to disagree with it.
fn torn_or_corrupt(
    file: &File,
    offset: u64,
    end: u64,
    len: usize,
    whole_reason: &str,
) -> io::Result<ScanEnd> {
    let corrupt = |reason: String| Ok(ScanEnd::Corrupt { offset, reason });
    let zeros = zeros_start(file, offset, end)?;
    let landed = if zeros <= offset {
        offset
    } else {
        zeros.next_multiple_of(ZERO_FILL_ALIGN).min(end)
    };
    let header_end = offset + HEADER_LEN as u64;
    if landed < header_end {
        // The header itself did not land whole: nothing to check it by.
        return Ok(ScanEnd::Torn(offset));
    }
    if !(MIN_PAYLOAD_LEN..=MAX_PAYLOAD_LEN).contains(&len) {
        return corrupt(format!("record length {len} is out of range"));
    }
    let frame_end = header_end + len as u64;
    if frame_end <= landed {
        // All of it is there, and it is wrong.
        return corrupt(whole_reason.to_owned());
    }
    // Shorter than `len`, so at most MAX_PAYLOAD_LEN.
    let mut prefix = vec![0u8; (landed - header_end) as usize];
    file.read_exact_at(&mut prefix, header_end)?;
    match codec::implied_len(&prefix) {
        Ok(None) => Ok(ScanEnd::Torn(offset)),
        Ok(Some(n)) if n == len => Ok(ScanEnd::Torn(offset)),
        Ok(Some(n)) => corrupt(format!(
            "record length {len} disagrees with its payload, which is {n} bytes"
        )),
        Err(e) => corrupt(format!("record of length {len} is damaged: {e}")),
    }
}

/// Where the run of zero bytes that ends the file before `end` begins
/// (`end` if the byte before it is not zero), looking back no further than
/// `from`.
fn zeros_start(file: &File, from: u64, end: u64) -> io::Result<u64> {
    let mut chunk = vec![0u8; 1 << 16];
    let mut at = end;
    while at > from {
        let n = chunk.len().min((at - from) as usize);
        let start = at - n as u64;
        file.read_exact_at(&mut chunk[..n], start)?;
        match chunk[..n].iter().rposition(|&b| b != 0) {
            Some(i) => return Ok(start + i as u64 + 1),
            None => at = start,
        }
    }
    Ok(from)
}

/// Reads from `offset` until `buf` is full or the file ends.
fn read_up_to(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Makes a creation or rename in the log's directory durable.
fn sync_dir(path: &Path) -> Result<(), LogError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io(format!("syncing directory {}", dir.display())))
}

/// Streams a file log as it is at the time of the call; see
/// [`WriterLog::reader`].
#[derive(Clone)]
pub struct FileReader {
    path: PathBuf,
    published: Arc<Mutex<Option<u64>>>,
}

impl LogReader for FileReader {
    /// Every transaction, in order, read by a blocking thread; reading stops
    /// early when the stream is dropped. The stream's end says whether the
    /// whole log was read. The thread is tokio's, held until then: callers
    /// bound their streams, or appends' writes wait for a thread.
    fn stream(&self) -> ReplayStream {
        let (path, published) = (self.path.clone(), self.published.clone());
        ReplayStream::spawn_blocking(move |mut sink| {
            let shown = path.display().to_string();
            let (file, len) = {
                let len = published.lock();
                match *len {
                    Some(len) => File::open(&path)
                        .map(|f| (f, len))
                        .map_err(LogError::io(format!("opening {shown}")))?,
                    None => {
                        return Err(LogError::Unavailable(format!(
                            "{shown} has not been replayed yet"
                        )));
                    }
                }
            };
            let mut failed = None;
            let mut revisions = Revisions::default();
            let scanned = scan(&file, len, &mut |r| {
                each_change(
                    r,
                    &mut revisions,
                    &mut |change| match sink.blocking_send(change) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(e) => {
                            failed = Some(e);
                            ControlFlow::Break(())
                        }
                    },
                )
            });
            if let Some(e) = failed {
                return Err(e);
            }
            match scanned {
                // What it streams goes on over gRPC, which says no more than
                // the head: no history is vouched for.
                Ok(ScanEnd::Clean) => Ok(ReplayStats {
                    records: sink.sent(),
                    head: revisions.head(),
                    history_from: revisions.head(),
                    bytes: len,
                    ..ReplayStats::default()
                }),
                // Up to `len` the log was durable when the read began: an
                // end there is damage, not a crash mid-write.
                Ok(ScanEnd::Torn(offset)) => Err(LogError::Corrupt {
                    path: shown,
                    offset,
                    reason: "record ends early".into(),
                }),
                Ok(ScanEnd::Corrupt { offset, reason }) => Err(LogError::Corrupt {
                    path: shown,
                    offset,
                    reason,
                }),
                Err(e) => Err(LogError::io(format!("reading {shown}"))(e)),
            }
        })
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".compact");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use kvs_core::{PlainState, Txn, Value};

    use super::*;

    /// A log file of `history` then `tail` overwrites of ten keys; returns
    /// its path and where the tail starts.
    fn log_file(dir: &Path, history: usize, tail: usize) -> (PathBuf, u64) {
        let put = |i: usize| Txn::Put {
            key: Key::parse(&format!("k{}", i % 10)).unwrap(),
            value: Value::Str(format!("{i:0>100}")),
        };
        let mut bytes = MAGIC.to_vec();
        for i in 0..history {
            codec::encode(&put(i), &mut bytes).unwrap();
        }
        let upto = bytes.len() as u64;
        for i in history..history + tail {
            codec::encode(&put(i), &mut bytes).unwrap();
        }
        let path = dir.join("kvs.log");
        fs::write(&path, &bytes).unwrap();
        (path, upto)
    }

    fn state_of(path: &Path, len: u64) -> PlainState {
        let mut state = PlainState::new();
        let mut revisions = Revisions::default();
        let end = scan(&File::open(path).unwrap(), len, &mut |r| {
            each_change(r, &mut revisions, &mut |c| {
                c.txn.apply_to(&mut state);
                ControlFlow::Continue(())
            })
        })
        .unwrap();
        assert!(matches!(end, ScanEnd::Clean));
        state
    }

    #[test]
    fn compaction_copies_a_long_tail_itself_and_leaves_a_short_one_to_the_swap_in() {
        let dir = tempfile::tempdir().unwrap();
        // About 2.6 MiB appended while the first 200 records were folded.
        let (path, upto) = log_file(dir.path(), 200, 25_000);
        let end = fs::metadata(&path).unwrap().len();
        let published = Mutex::new(Some(end));
        let done = compact(&path, upto, &published, 0).unwrap();
        assert_eq!(done.upto, end, "the compaction thread copied the tail");
        assert_eq!(fs::metadata(&done.tmp).unwrap().len(), done.len);
        assert_eq!(state_of(&done.tmp, done.len), state_of(&path, end));

        let (path, upto) = log_file(dir.path(), 200, 100);
        let published = Mutex::new(Some(fs::metadata(&path).unwrap().len()));
        let done = compact(&path, upto, &published, 0).unwrap();
        assert_eq!(done.upto, upto, "a short tail is left to the swap-in");
        assert_eq!(state_of(&done.tmp, done.len), state_of(&path, upto));
    }
}
