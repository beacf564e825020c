//! Wakes log followers when a log file grows, through one inotify watcher for
//! the whole daemon.
//!
//! A follower subscribes to a file and gets its own `Notify`; a write to the
//! file stores a wake-up in it, so a write that lands between reading to the
//! end and waiting is never missed. When the last subscriber of a file goes,
//! the file is no longer watched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

type Subscribers = HashMap<PathBuf, Vec<(u64, Arc<Notify>)>>;

struct Inner {
    subscribers: Mutex<Subscribers>,
    /// `None` when inotify is not available; followers then fall back to polling.
    watcher: Mutex<Option<RecommendedWatcher>>,
    next_id: AtomicU64,
}

/// Cheap to clone handle on the daemon's file watcher.
#[derive(Clone)]
pub struct FileWatcher {
    inner: Arc<Inner>,
}

/// A subscription to one file; dropping it unsubscribes.
pub struct Subscription {
    inner: Arc<Inner>,
    path: PathBuf,
    id: u64,
    notify: Arc<Notify>,
}

impl Subscription {
    /// Completes after the file has been written to since the last call.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for FileWatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl FileWatcher {
    pub fn new() -> Self {
        let subscribers: Mutex<Subscribers> = Mutex::new(HashMap::new());
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    let Ok(event) = event else { return };
                    if !matches!(event.kind, EventKind::Modify(_) | EventKind::Access(_)) {
                        return;
                    }
                    let Some(inner) = weak.upgrade() else { return };
                    let subscribers = lock(&inner.subscribers);
                    for path in &event.paths {
                        for (_, notify) in subscribers.get(path).into_iter().flatten() {
                            notify.notify_one();
                        }
                    }
                });
            let watcher = match watcher {
                Ok(watcher) => Some(watcher),
                Err(err) => {
                    tracing::warn!(error = %err, "no file watcher; log followers will poll");
                    None
                }
            };
            Inner {
                subscribers,
                watcher: Mutex::new(watcher),
                next_id: AtomicU64::new(0),
            }
        });
        Self { inner }
    }

    /// Subscribes to writes to `path`; `None` if it cannot be watched (it does not
    /// exist yet, or there is no watcher).
    pub fn subscribe(&self, path: &Path) -> Option<Subscription> {
        let watched = lock(&self.inner.subscribers).contains_key(path);
        // The watcher's event thread takes the subscriber lock, and `watch`
        // waits for that thread: never call it with the subscriber lock held.
        if !watched && !self.inner.watch(path) {
            return None;
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        lock(&self.inner.subscribers)
            .entry(path.to_owned())
            .or_default()
            .push((id, Arc::clone(&notify)));
        Some(Subscription {
            inner: Arc::clone(&self.inner),
            path: path.to_owned(),
            id,
            notify,
        })
    }
}

impl Inner {
    fn watch(&self, path: &Path) -> bool {
        lock(&self.watcher)
            .as_mut()
            .is_some_and(|watcher| watcher.watch(path, RecursiveMode::NonRecursive).is_ok())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut subscribers = lock(&self.inner.subscribers);
            let Some(list) = subscribers.get_mut(&self.path) else {
                return;
            };
            list.retain(|(id, _)| *id != self.id);
            let last = list.is_empty();
            if last {
                subscribers.remove(&self.path);
            }
            last
        };
        if !last {
            return;
        }
        if let Some(watcher) = lock(&self.inner.watcher).as_mut() {
            // The file may be gone already, which ends its watch anyway.
            let _ = watcher.unwatch(&self.path);
        }
        // Someone subscribed while the watch was being removed: restore it.
        if lock(&self.inner.subscribers).contains_key(&self.path) {
            self.inner.watch(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_write_wakes_the_subscriber_and_drop_unwatches() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        let watcher = FileWatcher::new();
        assert!(
            watcher.subscribe(&path).is_none(),
            "missing files cannot be watched"
        );
        let mut file = std::fs::File::create(&path).unwrap();
        let first = watcher.subscribe(&path).unwrap();
        let second = watcher.subscribe(&path).unwrap();
        file.write_all(b"line\n").unwrap();
        for subscription in [&first, &second] {
            tokio::time::timeout(Duration::from_secs(10), subscription.changed())
                .await
                .expect("a write wakes every subscriber");
        }
        drop(first);
        drop(second);
        assert!(lock(&watcher.inner.subscribers).is_empty());
    }
}
