//! Any bytes as the body of a log file after its header: opening and
//! replaying it answers records and a clean stop, a dropped torn tail, or a
//! corruption error, never a panic. A replay that succeeded leaves a file
//! that replays again to the same records, revisions and head with nothing
//! left to drop.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use kvs_core::Change;
use kvs_log::{FileLog, FileOptions, Log, LogError, ReplayStats};
use libfuzzer_sys::fuzz_target;

struct Env {
    rt: tokio::runtime::Runtime,
    path: PathBuf,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // run.sh names a directory it removes afterwards; otherwise memory-
        // backed when the machine has /dev/shm: no disk in the loop.
        let base = std::env::var_os("KVS_FUZZ_TMPDIR")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|d| d.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("kvs-fuzz-log-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fuzz temp dir");
        Env {
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            path: dir.join("kvs.log"),
        }
    })
}

fn replay(env: &Env, opts: &FileOptions) -> Result<(Vec<Change>, ReplayStats), LogError> {
    env.rt.block_on(async {
        let mut log = FileLog::open(&env.path, opts.clone())?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let stats = log.replay(move |t| sink.lock().unwrap().push(t)).await?;
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        Ok((seen, stats))
    })
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let input = kvs_fuzz::log_input(data);
    std::fs::write(&env.path, &input.file).expect("writing the fuzz log");
    let opts = FileOptions {
        truncate_corrupt: input.truncate_corrupt,
        // Replay never compacts, but keep it out of the picture all the same.
        compact_min_bytes: u64::MAX,
    };
    let (first, stats) = match replay(env, &opts) {
        Ok(done) => done,
        Err(LogError::Corrupt { .. }) if !opts.truncate_corrupt => return,
        Err(e) => panic!(
            "replay failed with {e} (truncate_corrupt: {})",
            opts.truncate_corrupt
        ),
    };
    let file_len = input.file.len() as u64;
    assert_eq!(stats.bytes, file_len);
    assert!(stats.records as usize >= first.len());
    let kept = file_len - stats.torn_bytes - stats.corrupt_bytes;
    let on_disk = std::fs::metadata(&env.path).expect("log file").len();
    assert_eq!(on_disk, kept, "{stats:?}");

    let (second, stats2) = replay(env, &opts).expect("a replayed log replays again");
    assert_eq!(stats2.torn_bytes + stats2.corrupt_bytes, 0, "{stats2:?}");
    assert_eq!(stats2.bytes, kept);
    assert_eq!(stats2.head, stats.head);
    assert!(first.iter().all(|c| c.revision <= stats.head), "{stats:?}");
    let bytes = |changes: &[Change]| {
        changes
            .iter()
            .map(kvs_fuzz::change_bytes)
            .collect::<Vec<_>>()
    };
    assert_eq!(bytes(&first), bytes(&second));
});
