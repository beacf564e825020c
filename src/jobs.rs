//! Job discovery: which directories under `config/jobs` are jobs, and their input specs.
//!
//! A job is a directory holding a regular, owner-executable file `run` (links
//! followed, link cycles walked once). Discovery always reads the disk, so jobs
//! added or removed are seen at once. Job ids coming from clients are looked up
//! here, component by component, with the same rules as the walk; they are never
//! used as a path on their own.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::paths::Paths;
use crate::store::Execution;

/// A job's id: its directory relative to `config/jobs`, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid job id {0:?}: expected a relative path such as backups/db without '.', '..' or empty parts"
)]
pub struct InvalidJobId(pub String);

impl JobId {
    /// Accepts only plain relative paths: no leading `/`, no `.` or `..`, no empty parts.
    pub fn parse(raw: &str) -> Result<Self, InvalidJobId> {
        let invalid = || InvalidJobId(raw.to_owned());
        if raw.is_empty() || raw.contains('\0') || raw.ends_with('/') || raw.contains("//") {
            return Err(invalid());
        }
        let path = Path::new(raw);
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(invalid());
        }
        // `components()` drops "." in the middle ("a/./b"); refuse it explicitly.
        if raw.split('/').any(|part| part == "." || part == "..") {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when this job is `prefix` itself or lies below it.
    pub fn is_within(&self, prefix: &JobId) -> bool {
        self.0 == prefix.0
            || (self.0.starts_with(&prefix.0)
                && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One declared input of a job (`run.input.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Input {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// A job's inputs in the order the spec file declares them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputSpec(pub Vec<(String, Input)>);

impl Serialize for InputSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, input) in &self.0 {
            map.serialize_entry(name, input)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for InputSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        InputSpec::from_value(value).map_err(D::Error::custom)
    }
}

/// Why a job's input values were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("missing required input {0}")]
    Missing(String),
    #[error("input {0} must not contain a NUL byte")]
    NulByte(String),
    #[error("input {name} must be one of {choices:?}, got {value:?}")]
    NotAChoice {
        name: String,
        value: String,
        choices: Vec<String>,
    },
}

impl InputSpec {
    /// Parses the JSON of a `run.input.json`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|err| format!("invalid JSON: {err}"))?;
        Self::from_value(value)
    }

    fn from_value(value: serde_json::Value) -> Result<Self, String> {
        let serde_json::Value::Object(map) = value else {
            return Err("the input spec must be a JSON object of inputs".to_owned());
        };
        let mut inputs = Vec::with_capacity(map.len());
        for (name, def) in map {
            if !is_input_name(&name) {
                return Err(format!(
                    "input name {name:?} must match [A-Za-z_][A-Za-z0-9_]*"
                ));
            }
            if !def.is_object() {
                return Err(format!("input {name} must be a JSON object"));
            }
            let input: Input =
                serde_json::from_value(def).map_err(|err| format!("input {name}: {err}"))?;
            if let (Some(default), Some(choices)) = (&input.default, &input.choices) {
                if !choices.contains(default) {
                    return Err(format!(
                        "input {name}: default {default:?} is not one of its choices"
                    ));
                }
            }
            inputs.push((name, input));
        }
        Ok(Self(inputs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values an execution gets: given values for declared names, defaults for
    /// missing ones; undeclared names are ignored. Refuses missing required inputs
    /// and values outside `choices`.
    pub fn resolve(
        &self,
        given: &[(String, String)],
    ) -> Result<BTreeMap<String, String>, InputError> {
        let mut values = BTreeMap::new();
        for (name, input) in &self.0 {
            let value = given
                .iter()
                .rev()
                .find(|(given_name, _)| given_name == name)
                .map(|(_, value)| value.clone())
                .or_else(|| input.default.clone());
            let Some(value) = value else {
                if input.required {
                    return Err(InputError::Missing(name.clone()));
                }
                continue;
            };
            if input.required && value.is_empty() {
                return Err(InputError::Missing(name.clone()));
            }
            // Values become environment variables, which cannot hold NUL.
            if value.contains('\0') {
                return Err(InputError::NulByte(name.clone()));
            }
            if let Some(choices) = &input.choices {
                if !choices.contains(&value) {
                    return Err(InputError::NotAChoice {
                        name: name.clone(),
                        value,
                        choices: choices.clone(),
                    });
                }
            }
            values.insert(name.clone(), value);
        }
        Ok(values)
    }
}

fn is_input_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A discovered job, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: JobId,
    pub input_spec: InputSpec,
    /// Filled by whoever knows the history; discovery leaves it empty.
    pub last_execution: Option<Arc<Execution>>,
    /// Why the input spec could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How deep discovery goes below `config/jobs`; deeper folders are ignored.
const MAX_DEPTH: usize = 64;

/// An open directory, read through `entries`, and its identity, to walk a link
/// cycle only once.
struct OpenDir {
    entries: rustix::fs::Dir,
    id: (u64, u64),
}

impl OpenDir {
    fn fd(&self) -> BorrowedFd<'_> {
        // Only position-independent calls (openat, statat) go through this fd.
        self.entries
            .fd()
            .expect("a directory stream always has its descriptor")
    }
}

fn open_dir(parent: BorrowedFd<'_>, name: &CStr) -> Option<OpenDir> {
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let stat = rustix::fs::fstat(&fd).ok()?;
    Some(OpenDir {
        id: (stat.st_dev, stat.st_ino),
        entries: rustix::fs::Dir::new(fd).ok()?,
    })
}

/// True when `dir` holds a regular (links followed), owner-executable `run`.
fn has_runnable(dir: BorrowedFd<'_>) -> bool {
    rustix::fs::statat(dir, c"run", AtFlags::empty()).is_ok_and(|stat| {
        FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile && stat.st_mode & 0o100 != 0
    })
}

fn read_spec(dir: BorrowedFd<'_>, job_id: &JobId) -> (InputSpec, Option<String>) {
    let fd = match rustix::fs::openat(
        dir,
        c"run.input.json",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return (InputSpec::default(), None),
        Err(err) => {
            return (
                InputSpec::default(),
                Some(format!(
                    "run.input.json of job {job_id} could not be read: {err}"
                )),
            );
        }
    };
    let mut text = String::new();
    if let Err(err) = File::from(fd).read_to_string(&mut text) {
        return (
            InputSpec::default(),
            Some(format!(
                "run.input.json of job {job_id} could not be read: {err}"
            )),
        );
    }
    match InputSpec::parse(&text) {
        Ok(spec) => (spec, None),
        Err(err) => (
            InputSpec::default(),
            Some(format!("run.input.json of job {job_id}: {err}")),
        ),
    }
}

/// The job in `dir`; `has_spec` says whether its listing showed a spec file.
fn job_at(dir: BorrowedFd<'_>, job_id: JobId, has_spec: bool) -> Job {
    let (input_spec, error) = if has_spec {
        read_spec(dir, &job_id)
    } else {
        (InputSpec::default(), None)
    };
    Job {
        job_id,
        input_spec,
        last_execution: None,
        error,
    }
}

/// Told of every folder discovery reads (`name` is `None`), just before it
/// reads it, and of every `run` or `run.input.json` that is a link (`name` is
/// its name), so a watcher can notice any change that alters the result.
pub type Visitor<'a> = dyn FnMut(BorrowedFd<'_>, Option<&CStr>) + 'a;

/// Every job below `config/jobs`, sorted by id. Unreadable folders are skipped.
///
/// The walk opens each folder once and looks at its entries relative to it
/// (`openat`, `statat`), so the cost per job does not grow with the depth of
/// its path.
pub fn discover(paths: &Paths) -> Vec<Job> {
    discover_visiting(paths, &mut |_, _| {}).unwrap_or_default()
}

/// `discover`, telling `visit` what it reads; `None` when `config/jobs` cannot
/// be opened.
pub fn discover_visiting(paths: &Paths, visit: &mut Visitor<'_>) -> Option<Vec<Job>> {
    let root_name = CString::new(paths.jobs_dir().into_os_string().into_vec()).ok()?;
    let mut root = open_dir(rustix::fs::CWD, &root_name)?;
    let mut walk = Walk {
        prefix: String::new(),
        ancestors: vec![root.id],
        jobs: Vec::new(),
        visit,
    };
    walk.folder(&mut root);
    let mut jobs = walk.jobs;
    jobs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    Some(jobs)
}

struct Walk<'v, 'a> {
    /// The id of the folder being read.
    prefix: String,
    ancestors: Vec<(u64, u64)>,
    jobs: Vec<Job>,
    visit: &'v mut Visitor<'a>,
}

impl Walk<'_, '_> {
    fn folder(&mut self, dir: &mut OpenDir) {
        (self.visit)(dir.fd(), None);
        let mut children = Vec::new();
        let (mut has_run, mut has_spec) = (false, false);
        while let Some(entry) = dir.entries.next() {
            let Ok(entry) = entry else { break };
            let name = entry.file_name();
            let file_type = entry.file_type();
            match name.to_bytes() {
                b"." | b".." => continue,
                b"run" => has_run = true,
                b"run.input.json" => has_spec = true,
                _ => {}
            }
            if file_type == FileType::Symlink
                && matches!(name.to_bytes(), b"run" | b"run.input.json")
            {
                (self.visit)(dir.fd(), Some(name));
            }
            let is_dir = match file_type {
                FileType::Directory => true,
                FileType::Symlink | FileType::Unknown => {
                    rustix::fs::statat(dir.fd(), name, AtFlags::empty()).is_ok_and(|stat| {
                        FileType::from_raw_mode(stat.st_mode) == FileType::Directory
                    })
                }
                _ => false,
            };
            if is_dir {
                children.push(name.to_owned());
            }
        }
        if has_run && !self.prefix.is_empty() && has_runnable(dir.fd()) {
            if let Ok(id) = JobId::parse(&self.prefix) {
                self.jobs.push(job_at(dir.fd(), id, has_spec));
            }
        }
        if self.ancestors.len() > MAX_DEPTH {
            return;
        }
        for child in children {
            let Ok(name) = child.to_str() else {
                tracing::warn!(name = ?child, "skipping a folder whose name is not UTF-8");
                continue;
            };
            let Some(mut opened) = open_dir(dir.fd(), &child) else {
                continue;
            };
            // A link back to a folder on the way here: walked once already.
            if self.ancestors.contains(&opened.id) {
                continue;
            }
            let length = self.prefix.len();
            if !self.prefix.is_empty() {
                self.prefix.push('/');
            }
            self.prefix.push_str(name);
            self.ancestors.push(opened.id);
            self.folder(&mut opened);
            self.ancestors.pop();
            self.prefix.truncate(length);
        }
    }
}

/// The job with this id, if discovery would list it.
///
/// Opens the id's folders one by one from `config/jobs`, following links and
/// refusing one that leads back to a folder already on the way, as `discover` does.
pub fn find(paths: &Paths, id: &JobId) -> Option<Job> {
    let root_name = CString::new(paths.jobs_dir().into_os_string().into_vec()).ok()?;
    let mut dir = open_dir(rustix::fs::CWD, &root_name)?;
    let mut ancestors = vec![dir.id];
    for part in id.as_str().split('/') {
        let name = CString::new(part).ok()?;
        let next = open_dir(dir.fd(), &name)?;
        if ancestors.contains(&next.id) || ancestors.len() > MAX_DEPTH {
            return None;
        }
        ancestors.push(next.id);
        dir = next;
    }
    has_runnable(dir.fd()).then(|| job_at(dir.fd(), id.clone(), true))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn write_job(root: &Path, id: &str, mode: u32) {
        let dir = root.join("config/jobs").join(id);
        fs::create_dir_all(&dir).unwrap();
        let run = dir.join("run");
        fs::write(&run, "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(&run, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn ids(paths: &Paths) -> Vec<String> {
        discover(paths)
            .into_iter()
            .map(|job| job.job_id.to_string())
            .collect()
    }

    #[test]
    fn job_ids_refuse_traversal_and_odd_shapes() {
        for bad in [
            "", "/etc", "..", "a/../b", "a/./b", "./a", "a/", "a//b", ".", "a\0b",
        ] {
            assert!(JobId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["a", "a/b/c", "with space", "dots.in.name", "..hidden"] {
            assert!(JobId::parse(good).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn discovery_finds_nested_jobs_and_skips_non_jobs() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::new(tmp.path().to_owned());
        write_job(tmp.path(), "top", 0o755);
        write_job(tmp.path(), "top/nested/deeper", 0o700);
        write_job(tmp.path(), "not-executable", 0o644);
        fs::create_dir_all(tmp.path().join("config/jobs/dir-named-run/run")).unwrap();
        fs::create_dir_all(tmp.path().join("config/jobs/dangling")).unwrap();
        symlink(
            "/nonexistent/run",
            tmp.path().join("config/jobs/dangling/run"),
        )
        .unwrap();
        assert_eq!(ids(&paths), ["top", "top/nested/deeper"]);
        assert!(find(&paths, &JobId::parse("top/nested/deeper").unwrap()).is_some());
        for missing in [
            "not-executable",
            "dir-named-run",
            "dangling",
            "nope",
            "top/nested",
        ] {
            assert!(
                find(&paths, &JobId::parse(missing).unwrap()).is_none(),
                "{missing}"
            );
        }
    }

    #[test]
    fn discovery_follows_links_and_walks_cycles_once() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::new(tmp.path().to_owned());
        let outside = tmp.path().join("elsewhere/linked-job");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(outside.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
        write_job(tmp.path(), "loop", 0o755);
        let jobs = tmp.path().join("config/jobs");
        symlink(&outside, jobs.join("via-link")).unwrap();
        symlink(jobs.join("loop"), jobs.join("loop/again")).unwrap();
        assert_eq!(ids(&paths), ["loop", "via-link"]);
        assert!(find(&paths, &JobId::parse("via-link").unwrap()).is_some());
        assert!(find(&paths, &JobId::parse("loop/again").unwrap()).is_none());
    }

    #[test]
    fn broken_input_spec_is_reported_not_hidden() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::new(tmp.path().to_owned());
        write_job(tmp.path(), "broken", 0o755);
        fs::write(
            tmp.path().join("config/jobs/broken/run.input.json"),
            "{nope",
        )
        .unwrap();
        let jobs = discover(&paths);
        assert_eq!(jobs.len(), 1);
        assert!(jobs[0].error.as_deref().unwrap().contains("invalid JSON"));
    }

    #[test]
    fn input_specs_parse_and_validate() {
        assert!(InputSpec::parse("{}").unwrap().is_empty());
        assert!(InputSpec::parse("[]").is_err());
        assert!(InputSpec::parse(r#"{"1bad": {}}"#).is_err());
        assert!(InputSpec::parse(r#"{"x": {"required": "yes"}}"#).is_err());
        assert!(InputSpec::parse(r#"{"x": {"default": "c", "choices": ["a"]}}"#).is_err());
        let spec = InputSpec::parse(
            r#"{"who": {"required": true, "extra": 1}, "size": {"default": "s", "choices": ["s", "m"]}, "note": {}}"#,
        )
        .unwrap();
        assert_eq!(
            spec.0.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["who", "size", "note"]
        );
        let given = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            spec.resolve(&given(&[])),
            Err(InputError::Missing("who".into()))
        );
        let values = spec
            .resolve(&given(&[("who", "me"), ("unknown", "x")]))
            .unwrap();
        assert_eq!(values.get("who").unwrap(), "me");
        assert_eq!(values.get("size").unwrap(), "s");
        assert!(!values.contains_key("unknown") && !values.contains_key("note"));
        assert!(matches!(
            spec.resolve(&given(&[("who", "me"), ("size", "xl")])),
            Err(InputError::NotAChoice { .. })
        ));
        assert_eq!(
            spec.resolve(&given(&[("who", "a\0b")])),
            Err(InputError::NulByte("who".into()))
        );
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(InputSpec::parse(&json).unwrap(), spec);
    }
}
