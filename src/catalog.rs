//! The catalog: discovery's answer, kept between requests for as long as the
//! folders it read have not changed.
//!
//! Every folder discovery reads gets an inotify watch, added before the folder
//! is read. The kernel queues an event with the change that causes it, so
//! draining the queue at the start of a request says whether anything changed
//! up to that moment: a job added or removed is still seen at once, and an
//! unchanged tree costs one `read` instead of a walk.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use crate::jobs::{self, Job, JobId};
use crate::paths::Paths;

/// What makes a folder's discovery result stale: entries coming and going,
/// modes changing, a spec rewritten, the folder itself moved or removed.
fn watched_events() -> WatchFlags {
    WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::ATTRIB
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
}

struct Snapshot {
    jobs: Arc<Vec<Job>>,
    /// The queue of changes to the folders `jobs` was read from.
    changes: OwnedFd,
}

pub struct Catalog {
    paths: Paths,
    snapshot: Mutex<Option<Snapshot>>,
}

impl Catalog {
    pub fn new(paths: Paths) -> Self {
        Self {
            paths,
            snapshot: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Snapshot>> {
        self.snapshot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every discovered job, sorted by id, as the disk is now. Blocking.
    pub fn jobs(&self) -> Arc<Vec<Job>> {
        let mut snapshot = self.lock();
        if let Some(current) = snapshot.as_ref() {
            if !changed(&current.changes) {
                return Arc::clone(&current.jobs);
            }
        }
        let (jobs, changes) = self.read();
        let jobs = Arc::new(jobs);
        *snapshot = changes.map(|changes| Snapshot {
            jobs: Arc::clone(&jobs),
            changes,
        });
        jobs
    }

    /// The job with this id, if discovery lists it now. Blocking.
    pub fn find(&self, id: &JobId) -> Option<Job> {
        {
            let snapshot = self.lock();
            if let Some(current) = snapshot.as_ref() {
                if !changed(&current.changes) {
                    return current
                        .jobs
                        .binary_search_by(|job| job.job_id.cmp(id))
                        .ok()
                        .map(|index| current.jobs[index].clone());
                }
            }
        }
        // Something changed: look at just this job rather than walk everything.
        jobs::find(&self.paths, id)
    }

    /// Walks the tree, watching every folder it reads. Without a complete set
    /// of watches (no inotify, too many folders) there is no snapshot to keep.
    fn read(&self) -> (Vec<Job>, Option<OwnedFd>) {
        let Ok(changes) = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC) else {
            return (jobs::discover(&self.paths), None);
        };
        let mut complete = true;
        let mut watch = |dir: BorrowedFd<'_>, name: Option<&CStr>| {
            // The descriptor's /proc link reaches the folder (or the link's
            // target) without walking its path again.
            let path = match name {
                None => format!("/proc/self/fd/{}", dir.as_raw_fd()),
                Some(name) => format!(
                    "/proc/self/fd/{}/{}",
                    dir.as_raw_fd(),
                    name.to_string_lossy()
                ),
            };
            if inotify::add_watch(&changes, path.as_str(), watched_events()).is_err() {
                complete = false;
            }
        };
        match jobs::discover_visiting(&self.paths, &mut watch) {
            Some(jobs) => (jobs, complete.then_some(changes)),
            None => (Vec::new(), None),
        }
    }
}

/// Drains the change queue; true if anything in it matters to discovery.
fn changed(changes: &OwnedFd) -> bool {
    let mut buffer = [MaybeUninit::<u8>::uninit(); 4096];
    let mut reader = inotify::Reader::new(changes, &mut buffer);
    let mut relevant = false;
    loop {
        match reader.next() {
            Ok(event) => relevant |= matters(event.events(), event.file_name()),
            Err(rustix::io::Errno::AGAIN) => return relevant,
            Err(rustix::io::Errno::INTR) => continue,
            // An unreadable queue cannot vouch for the snapshot.
            Err(_) => return true,
        }
    }
}

fn matters(events: ReadFlags, name: Option<&CStr>) -> bool {
    let structural = ReadFlags::CREATE
        | ReadFlags::DELETE
        | ReadFlags::MOVED_FROM
        | ReadFlags::MOVED_TO
        | ReadFlags::DELETE_SELF
        | ReadFlags::MOVE_SELF
        | ReadFlags::IGNORED
        | ReadFlags::UNMOUNT
        | ReadFlags::QUEUE_OVERFLOW;
    if events.intersects(structural) || events.contains(ReadFlags::ISDIR) {
        return true;
    }
    // A mode or content change matters only for the files discovery reads;
    // an event without a name is about a watched `run` link target itself.
    match name {
        None => true,
        Some(name) => matches!(name.to_bytes(), b"run" | b"run.input.json"),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn write_job(root: &std::path::Path, id: &str) {
        let dir = root.join("config/jobs").join(id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(dir.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn ids(catalog: &Catalog) -> Vec<String> {
        catalog
            .jobs()
            .iter()
            .map(|job| job.job_id.to_string())
            .collect()
    }

    #[test]
    fn every_kind_of_change_is_seen_by_the_next_call() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write_job(root, "a");
        write_job(root, "deep/b");
        let catalog = Catalog::new(Paths::new(root.to_owned()));
        assert_eq!(ids(&catalog), ["a", "deep/b"]);
        let first = catalog.jobs();
        assert!(
            Arc::ptr_eq(&first, &catalog.jobs()),
            "unchanged tree: same snapshot"
        );

        write_job(root, "deep/c");
        assert_eq!(ids(&catalog), ["a", "deep/b", "deep/c"]);
        let jobs = root.join("config/jobs");
        fs::set_permissions(jobs.join("a/run"), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(ids(&catalog), ["deep/b", "deep/c"]);
        fs::write(jobs.join("deep/b/run.input.json"), "{").unwrap();
        assert!(catalog.jobs()[0].error.is_some());
        fs::remove_dir_all(jobs.join("deep/c")).unwrap();
        assert_eq!(ids(&catalog), ["deep/b"]);

        // A link to a folder outside, and a change inside that folder.
        let outside = root.join("outside");
        fs::create_dir_all(&outside).unwrap();
        symlink(&outside, jobs.join("linked")).unwrap();
        assert_eq!(ids(&catalog), ["deep/b"]);
        fs::write(outside.join("run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(outside.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(ids(&catalog), ["deep/b", "linked"]);
        assert!(catalog.find(&JobId::parse("linked").unwrap()).is_some());
        assert!(catalog.find(&JobId::parse("a").unwrap()).is_none());

        // Rewriting a file discovery does not read keeps the snapshot.
        fs::write(outside.join("output.txt"), "data").unwrap();
        let before = catalog.jobs();
        fs::write(outside.join("output.txt"), "more data").unwrap();
        assert!(Arc::ptr_eq(&before, &catalog.jobs()));
    }

    #[test]
    fn a_missing_jobs_folder_is_found_when_it_appears() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(Paths::new(tmp.path().to_owned()));
        assert!(catalog.jobs().is_empty());
        write_job(tmp.path(), "late");
        assert_eq!(ids(&catalog), ["late"]);
    }
}
