//! The registry on disk: `DIR/NAME.binpb` holds a registration's normalised FileDescriptorSet.
//! Writes are atomic (temp file, fsync, rename, fsync of the directory) and serialised by an
//! exclusive lock on `DIR/.lock`, so a crash or a concurrent CLI never leaves a half-written or
//! half-checked registry. A refused change leaves the directory as it was.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::normalize::check_name;
use super::{Registration, Registry, RegistryError, merge_registrations};

const EXTENSION: &str = "binpb";

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// The registration was written.
    Added,
    /// The same name with the same digest was already registered; nothing changed.
    Unchanged,
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

    /// Adds a registration after checking it merges with the others; refuses a taken name.
    pub fn add(&self, registration: &Registration) -> Result<AddOutcome, RegistryError> {
        let _lock = self.lock()?;
        let mut all = self.read_all()?;
        if let Some(existing) = all.iter().find(|r| r.name == registration.name) {
            if existing.digest == registration.digest {
                return Ok(AddOutcome::Unchanged);
            }
            return Err(RegistryError::AlreadyRegistered(format!(
                "registration `{}` already exists with different contents ({}); replacing a registration is \
                 not supported yet: remove it first with `switchyard descriptors remove {}`, or add under another --name",
                registration.name, existing.digest, registration.name
            )));
        }
        all.push(registration.clone());
        merge_registrations(all)?;
        self.write_atomically(&self.file_of(&registration.name), &registration.encode())?;
        Ok(AddOutcome::Added)
    }

    /// Removes a registration, refusing if the others would no longer merge without it.
    pub fn remove(&self, name: &str) -> Result<Registration, RegistryError> {
        check_name(name)?;
        let _lock = self.lock()?;
        let mut all = self.read_all()?;
        let index = all.iter().position(|r| r.name == name).ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        let removed = all.remove(index);
        merge_registrations(all).map_err(|e| {
            RegistryError::Conflict(format!("removing `{name}` would break the remaining registrations: {e}"))
        })?;
        let path = self.file_of(name);
        fs::remove_file(&path).map_err(|source| RegistryError::Write { path: path.clone(), source })?;
        sync_dir(&self.path).map_err(|source| RegistryError::Write { path: self.path.clone(), source })?;
        Ok(removed)
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

    fn write_atomically(&self, target: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
        let write_err = |source| RegistryError::Write { path: target.to_owned(), source };
        let file_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("registration");
        let temp = self.path.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = File::create(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp, target)?;
            sync_dir(&self.path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map_err(write_err)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
