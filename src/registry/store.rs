//! The registry on disk: `DIR/NAME.binpb` holds a registration's normalised FileDescriptorSet,
//! and `DIR/.history/NAME/000001.binpb`, `000002.binpb`, ... every version it has had, the
//! current one last (a rollback appends the version it restores, so nothing is ever lost).
//! Replacing a registration compares the versions and refuses a change that breaks clients
//! unless told otherwise. Writes are atomic (temp file, fsync, rename, fsync of the directory)
//! and serialised by an exclusive lock on `DIR/.lock`, so a crash or a concurrent CLI never
//! leaves a half-written or half-checked registry. A refused change leaves the directory as it
//! was.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::normalize::check_name;
use super::{CompatReport, Registration, Registry, RegistryError, compare, merge_registrations};

const EXTENSION: &str = "binpb";
const HISTORY: &str = ".history";

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// The registration was written under a new name.
    Added,
    /// It replaced an earlier version; what changed.
    Replaced(CompatReport),
    /// The same name with the same digest was already registered; nothing changed.
    Unchanged,
}

/// A checked change, not yet written. A directory stays locked while it is held; the shared
/// registry is written only if nothing changed it since (its generation then).
#[derive(Debug)]
pub struct Pending {
    pub(super) guard: Guard,
    name: String,
    pub(super) change: Change,
}

/// What keeps a checked change valid until it is written.
#[derive(Debug)]
pub(super) enum Guard {
    /// The directory's lock, held.
    Lock(#[allow(dead_code)] File),
    /// The shared registry's generation and registrations the change was checked against.
    Generation { base: u64, registrations: Vec<Registration> },
}

#[derive(Debug)]
pub(super) enum Change {
    Nothing,
    Write { registration: Registration, replaced: Option<Registration>, report: Option<CompatReport>, rollback: bool },
    Remove(Registration),
}

impl Pending {
    pub(super) fn new(guard: Guard, name: &str, change: Change) -> Self {
        Pending { guard, name: name.to_owned(), change }
    }

    /// The registrations the change was checked against, when it was checked against the
    /// shared registry (a snapshot built with the change starts from them).
    pub fn checked_against(&self) -> Option<&[Registration]> {
        match &self.guard {
            Guard::Generation { registrations, .. } => Some(registrations),
            Guard::Lock(_) => None,
        }
    }

    /// The registration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registration as it will be once committed (None: removed).
    pub fn after(&self) -> Option<&Registration> {
        match &self.change {
            Change::Write { registration, .. } => Some(registration),
            Change::Remove(_) => None,
            Change::Nothing => None,
        }
    }

    /// True when committing it changes nothing.
    pub fn is_noop(&self) -> bool {
        matches!(self.change, Change::Nothing)
    }
}

/// What a committed change did.
#[derive(Debug, Clone)]
pub enum Changed {
    /// The registration was written: new (None), or replacing another version (what changed).
    Added(Option<CompatReport>),
    /// Nothing: the same contents were registered.
    Unchanged,
    /// The registration was removed.
    Removed(Registration),
    /// An earlier version was restored; what that changed.
    RolledBack(Registration, CompatReport),
}

/// One stored version of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its number (1 is the first).
    pub number: u32,
    /// Its digest.
    pub digest: String,
    /// When it was written.
    pub written: std::time::SystemTime,
    /// True for the version serving now.
    pub current: bool,
}

/// A registry directory.
#[derive(Debug, Clone)]
pub struct RegistryDir {
    path: PathBuf,
}

impl RegistryDir {
    /// The registry at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RegistryDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file_of(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.{EXTENSION}"))
    }

    /// Reads every registration. A missing directory is an empty registry.
    pub fn read_all(&self) -> Result<Vec<Registration>, RegistryError> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(RegistryError::Read { path: self.path.clone(), source }),
        };
        let mut registrations = Vec::new();
        for entry in entries {
            let path = entry.map_err(|source| RegistryError::Read { path: self.path.clone(), source })?.path();
            if path.extension().is_none_or(|e| e != EXTENSION) || !path.is_file() {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            let bytes = fs::read(&path).map_err(|source| RegistryError::Read { path: path.clone(), source })?;
            let registration = Registration::decode(name, &bytes).map_err(|e| RegistryError::InvalidDescriptors {
                what: path.display().to_string(),
                message: e.to_string(),
            })?;
            registrations.push(registration);
        }
        registrations.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(registrations)
    }

    /// Reads and merges every registration.
    pub fn load(&self) -> Result<Registry, RegistryError> {
        merge_registrations(self.read_all()?)
    }

    /// Adds a registration after checking it merges with the others. An existing name is
    /// replaced when nothing breaks, or when `allow_breaking`; the old version stays in the
    /// history.
    pub fn add(&self, registration: &Registration, allow_breaking: bool) -> Result<AddOutcome, RegistryError> {
        let pending = self.prepare_add(registration, allow_breaking)?;
        match self.commit(pending)? {
            Changed::Added(report) => Ok(report.map_or(AddOutcome::Added, AddOutcome::Replaced)),
            _ => Ok(AddOutcome::Unchanged),
        }
    }

    /// Restores the version before the current one (or, for a removed registration, its last
    /// version), after checking it merges with the others; what that changes.
    pub fn rollback(&self, name: &str) -> Result<(Registration, CompatReport), RegistryError> {
        let pending = self.prepare_rollback(name)?;
        match self.commit(pending)? {
            Changed::RolledBack(restored, report) => Ok((restored, report)),
            _ => Err(RegistryError::NoEarlierVersion(name.to_owned())),
        }
    }

    /// Removes a registration, refusing if the others would no longer merge without it; its
    /// versions stay in the history.
    pub fn remove(&self, name: &str) -> Result<Registration, RegistryError> {
        let pending = self.prepare_remove(name)?;
        match self.commit(pending)? {
            Changed::Removed(removed) => Ok(removed),
            _ => Err(RegistryError::NotFound(name.to_owned())),
        }
    }

    /// The versions of `name`, oldest first. A registration written before versions were kept
    /// has its current version only.
    pub fn versions(&self, name: &str) -> Result<Vec<Version>, RegistryError> {
        check_name(name)?;
        let current = self.read_current(name)?.map(|r| r.digest);
        let mut versions: Vec<Version> = self
            .history(name)?
            .into_iter()
            .map(|(number, path)| {
                let registration = self.read_file(name, &path)?;
                let written = fs::metadata(&path).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                Ok(Version { number, digest: registration.digest, written, current: false })
            })
            .collect::<Result<_, RegistryError>>()?;
        if let Some(last) = versions.last_mut().filter(|v| Some(&v.digest) == current.as_ref()) {
            last.current = true;
        } else if let Some(digest) = current {
            let path = self.file_of(name);
            let written = fs::metadata(&path).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
            let number = versions.last().map_or(1, |v| v.number + 1);
            versions.push(Version { number, digest, written, current: true });
        }
        Ok(versions)
    }

    /// Checks an `add` without writing anything: the registry stays locked until the change is
    /// committed or dropped, so a caller can first check what the change does to a running
    /// gateway.
    pub fn prepare_add(&self, registration: &Registration, allow_breaking: bool) -> Result<Pending, RegistryError> {
        let lock = self.lock()?;
        let change = check_add(self.read_all()?, registration, allow_breaking)?;
        Ok(Pending::new(Guard::Lock(lock), &registration.name, change))
    }

    /// Checks a `rollback` without writing anything (see `prepare_add`).
    pub fn prepare_rollback(&self, name: &str) -> Result<Pending, RegistryError> {
        check_name(name)?;
        let lock = self.lock()?;
        let current = self.read_current(name)?;
        let history = self.history(name)?;
        let older = history.iter().rev().map(|(_, path)| self.read_file(name, path));
        let change = check_rollback(self.read_all()?, name, current, older)?;
        Ok(Pending::new(Guard::Lock(lock), name, change))
    }

    /// Checks a `remove` without writing anything (see `prepare_add`).
    pub fn prepare_remove(&self, name: &str) -> Result<Pending, RegistryError> {
        check_name(name)?;
        let lock = self.lock()?;
        let change = check_remove(self.read_all()?, name)?;
        Ok(Pending::new(Guard::Lock(lock), name, change))
    }

    /// Writes a prepared change (atomically, file by file) and releases the lock.
    pub fn commit(&self, pending: Pending) -> Result<Changed, RegistryError> {
        let Pending { guard: _lock, change, .. } = pending;
        match change {
            Change::Nothing => Ok(Changed::Unchanged),
            Change::Write { registration, replaced, report, rollback } => {
                if let Some(replaced) = &replaced {
                    self.remember(replaced)?;
                }
                self.make_current(&registration)?;
                Ok(if rollback {
                    Changed::RolledBack(registration, report.unwrap_or_default())
                } else {
                    Changed::Added(report)
                })
            }
            Change::Remove(removed) => {
                // Kept in the history, so `rollback` can bring it back.
                self.remember(&removed)?;
                let path = self.file_of(&removed.name);
                fs::remove_file(&path).map_err(|source| RegistryError::Write { path: path.clone(), source })?;
                sync_dir(&self.path).map_err(|source| RegistryError::Write { path: self.path.clone(), source })?;
                Ok(Changed::Removed(removed))
            }
        }
    }

    /// Writes `registration` as the current version and appends it to the history.
    fn make_current(&self, registration: &Registration) -> Result<(), RegistryError> {
        let encoded = registration.encode();
        self.append_history(&registration.name, &encoded)?;
        self.write_atomically(&self.path, &self.file_of(&registration.name), &encoded)
    }

    /// Makes sure `registration` (being replaced) is the newest history entry: registrations
    /// written before versions were kept have none.
    fn remember(&self, registration: &Registration) -> Result<(), RegistryError> {
        let history = self.history(&registration.name)?;
        let newest = match history.last() {
            Some((_, path)) => Some(self.read_file(&registration.name, path)?.digest),
            None => None,
        };
        if newest.as_ref() != Some(&registration.digest) {
            self.append_history(&registration.name, &registration.encode())?;
        }
        Ok(())
    }

    fn history_dir(&self, name: &str) -> PathBuf {
        self.path.join(HISTORY).join(name)
    }

    /// The history entries of `name`: (number, file), oldest first.
    fn history(&self, name: &str) -> Result<Vec<(u32, PathBuf)>, RegistryError> {
        let dir = self.history_dir(name);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(RegistryError::Read { path: dir, source }),
        };
        let mut found = Vec::new();
        for entry in entries {
            let path = entry.map_err(|source| RegistryError::Read { path: dir.clone(), source })?.path();
            let number = path
                .extension()
                .filter(|e| *e == EXTENSION)
                .and_then(|_| path.file_stem()?.to_str()?.parse::<u32>().ok());
            if let Some(number) = number {
                found.push((number, path));
            }
        }
        found.sort();
        Ok(found)
    }

    fn append_history(&self, name: &str, encoded: &[u8]) -> Result<(), RegistryError> {
        let dir = self.history_dir(name);
        fs::create_dir_all(&dir).map_err(|source| RegistryError::Write { path: dir.clone(), source })?;
        let next = self.history(name)?.last().map_or(1, |(n, _)| n + 1);
        self.write_atomically(&dir, &dir.join(format!("{next:06}.{EXTENSION}")), encoded)
    }

    fn read_current(&self, name: &str) -> Result<Option<Registration>, RegistryError> {
        let path = self.file_of(name);
        if !path.is_file() {
            return Ok(None);
        }
        self.read_file(name, &path).map(Some)
    }

    fn read_file(&self, name: &str, path: &Path) -> Result<Registration, RegistryError> {
        let bytes = fs::read(path).map_err(|source| RegistryError::Read { path: path.to_owned(), source })?;
        Registration::decode(name, &bytes)
            .map_err(|e| RegistryError::InvalidDescriptors { what: path.display().to_string(), message: e.to_string() })
    }

    fn lock(&self) -> Result<File, RegistryError> {
        let write_err = |source| RegistryError::Write { path: self.path.clone(), source };
        fs::create_dir_all(&self.path).map_err(write_err)?;
        let lock_path = self.path.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| RegistryError::Write { path: lock_path.clone(), source })?;
        file.lock().map_err(|source| RegistryError::Write { path: lock_path, source })?;
        Ok(file)
    }

    fn write_atomically(&self, dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
        let write_err = |source| RegistryError::Write { path: target.to_owned(), source };
        let file_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("registration");
        let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = File::create(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp, target)?;
            sync_dir(dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map_err(write_err)
    }
}

/// Checks adding `registration` to `all` (the registry as it is): unchanged, or a write that
/// merges with the others and breaks no client unless `allow_breaking`.
pub(super) fn check_add(
    mut all: Vec<Registration>,
    registration: &Registration,
    allow_breaking: bool,
) -> Result<Change, RegistryError> {
    let existing = all.iter().position(|r| r.name == registration.name).map(|i| all.remove(i));
    let report = match &existing {
        Some(existing) if existing.digest == registration.digest => return Ok(Change::Nothing),
        Some(existing) => {
            let report = compare(existing, registration);
            if report.is_breaking() && !allow_breaking {
                return Err(RegistryError::Breaking { name: registration.name.clone(), report });
            }
            Some(report)
        }
        None => None,
    };
    all.push(registration.clone());
    merge_registrations(all)?;
    Ok(Change::Write { registration: registration.clone(), replaced: existing, report, rollback: false })
}

/// Checks rolling `name` back: to the newest of `older` (its versions, newest first) that is
/// not `current`, or, removed, to its last version; the result must merge with the others.
pub(super) fn check_rollback(
    mut all: Vec<Registration>,
    name: &str,
    current: Option<Registration>,
    older: impl Iterator<Item = Result<Registration, RegistryError>>,
) -> Result<Change, RegistryError> {
    let mut target = None;
    for version in older {
        let version = version?;
        if current.as_ref().is_none_or(|c| c.digest != version.digest) {
            target = Some(version);
            break;
        }
    }
    let target = target.ok_or_else(|| RegistryError::NoEarlierVersion(name.to_owned()))?;
    all.retain(|r| r.name != name);
    all.push(target.clone());
    merge_registrations(all)?;
    let report = current.as_ref().map(|current| compare(current, &target));
    Ok(Change::Write { registration: target, replaced: current, report, rollback: true })
}

/// Checks removing `name` from `all`: the others must still merge without it.
pub(super) fn check_remove(mut all: Vec<Registration>, name: &str) -> Result<Change, RegistryError> {
    let index = all.iter().position(|r| r.name == name).ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
    let removed = all.remove(index);
    merge_registrations(all).map_err(|e| {
        RegistryError::Conflict(format!("removing `{name}` would break the remaining registrations: {e}"))
    })?;
    Ok(Change::Remove(removed))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
