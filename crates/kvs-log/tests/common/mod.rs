//! What the backends' tests share.

use kvs_core::Change;
use kvs_log::ChangeFeed;

/// Everything `feed` has after `after`, read `max` transactions at a time,
/// and the head of the last read.
pub async fn follow_all(feed: &impl ChangeFeed, mut after: u64, max: usize) -> (Vec<Change>, u64) {
    let mut all = Vec::new();
    loop {
        let page = feed.read_after(after, max).await.expect("a follow read");
        let Some(last) = page.changes.last() else {
            return (all, page.head);
        };
        after = last.revision;
        all.extend(page.changes);
    }
}
