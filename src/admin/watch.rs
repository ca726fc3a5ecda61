//! Reload on file changes: the config file, the descriptor directory, the schemas directory
//! and the supergraph file are watched (their directories, so an editor's rename and a Kubernetes ConfigMap's `..data`
//! symlink swap are seen as well as writes). After any event the inputs are fingerprinted by
//! content until two fingerprints `settle` apart agree — a file still being written is never
//! applied — and a reload runs when the settled fingerprint differs from the last one seen. A
//! refused reload is logged and the running snapshot keeps serving; the next change retries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use crate::gateway::Gateway;

/// What is watched, resolved from the serving snapshot.
#[derive(Debug, Clone)]
struct Inputs {
    config: Option<PathBuf>,
    descriptors: Option<PathBuf>,
    schemas: PathBuf,
    supergraph: Option<PathBuf>,
}

impl Inputs {
    fn of(gateway: &Gateway) -> Inputs {
        let snapshot = gateway.snapshot();
        let sources = gateway.sources();
        Inputs {
            config: sources.config_file.clone(),
            // A shared registry is followed in Redis, not on disk.
            descriptors: (!sources.no_descriptor_dir && gateway.shared_registry().is_none())
                .then(|| snapshot.config.sources.descriptors.clone()),
            schemas: snapshot.config.sources.schemas.clone(),
            supergraph: snapshot.config.sources.supergraph.clone(),
        }
    }

    /// A digest of everything a reload would read: the config file's bytes, and each
    /// registration's and schema file's name and bytes (symlinks followed).
    fn fingerprint(&self) -> [u8; 32] {
        let mut digest = Sha256::new();
        if let Some(config) = &self.config {
            digest.update(b"config\0");
            digest.update(std::fs::read(config).unwrap_or_default());
        }
        if let Some(supergraph) = &self.supergraph {
            digest.update(b"supergraph\0");
            digest.update(std::fs::read(supergraph).unwrap_or_default());
        }
        if let Some(dir) = &self.descriptors {
            add_files(&mut digest, dir, "binpb", false);
        }
        add_files(&mut digest, &self.schemas, "graphql", true);
        digest.finalize().into()
    }

    /// The directories to watch (each once, the existing ones): the config file's, and the
    /// one its symlinks resolve to now (edits in place there are seen too).
    fn directories(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut found: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        let parent = |path: &Path| match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let config_dir = self.config.as_deref().map(parent);
        let resolved_dir = self.config.as_deref().and_then(|c| c.canonicalize().ok()).map(|c| parent(&c));
        let supergraph_dir = self.supergraph.as_deref().map(parent);
        let resolved_supergraph = self.supergraph.as_deref().and_then(|c| c.canonicalize().ok()).map(|c| parent(&c));
        let candidates = [
            (config_dir, RecursiveMode::NonRecursive),
            (resolved_dir, RecursiveMode::NonRecursive),
            (supergraph_dir, RecursiveMode::NonRecursive),
            (resolved_supergraph, RecursiveMode::NonRecursive),
            (self.descriptors.clone(), RecursiveMode::NonRecursive),
            (Some(self.schemas.clone()), RecursiveMode::Recursive),
        ];
        for (dir, mode) in candidates {
            let Some(dir) = dir.filter(|d| d.is_dir()) else { continue };
            let canonical = dir.canonicalize().unwrap_or(dir);
            if !found.iter().any(|(d, _)| d == &canonical) {
                found.push((canonical, mode));
            }
        }
        found
    }
}

/// Adds every `*.extension` file under `dir` (sorted; recursively when asked) to `digest`.
fn add_files(digest: &mut Sha256, dir: &Path, extension: &str, recursive: bool) {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if recursive {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == extension) {
                files.push(path);
            }
        }
    }
    files.sort();
    for file in files {
        digest.update(file.to_string_lossy().as_bytes());
        digest.update(b"\0");
        digest.update(std::fs::read(&file).unwrap_or_default());
    }
}

/// The running watcher; dropping it stops watching.
pub struct SourceWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SourceWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `gateway`'s sources and reloads it when they change, if `sources.watch` is on.
pub fn watch_sources(gateway: Arc<Gateway>) -> Result<Option<SourceWatch>, notify::Error> {
    let settings = gateway.snapshot().config.sources.clone();
    if !settings.watch {
        return Ok(None);
    }
    let inputs = Inputs::of(&gateway);
    let directories = inputs.directories();
    if directories.is_empty() {
        return Ok(None);
    }
    // What the serving snapshot was built from, read now, before this returns: read in the task
    // instead, a change made just after this returned (before the task ran) would be taken for
    // the starting point and never applied.
    let initial = inputs.fingerprint();
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            let _ = events.send(());
        }
    })?;
    let mut watched = Vec::new();
    for (dir, mode) in directories {
        watcher.watch(&dir, mode)?;
        watched.push(dir);
    }
    tracing::info!(directories = ?watched, "watching sources");
    let settle = settings.settle.get().max(Duration::from_millis(10));
    let task = tokio::spawn(async move {
        // The watcher lives as long as this task.
        let mut watcher = watcher;
        let fingerprint_of = |inputs: Inputs| async move {
            tokio::task::spawn_blocking(move || inputs.fingerprint()).await.unwrap_or_default()
        };
        let mut applied = initial;
        while received.recv().await.is_some() {
            // Wait until the files hold still for a whole settle period.
            let mut current = fingerprint_of(inputs.clone()).await;
            loop {
                tokio::time::sleep(settle).await;
                while received.try_recv().is_ok() {}
                let next = fingerprint_of(inputs.clone()).await;
                if next == current {
                    break;
                }
                current = next;
            }
            // A swapped symlink may point into a directory not watched yet.
            for (dir, mode) in inputs.directories() {
                if !watched.contains(&dir) && watcher.watch(&dir, mode).is_ok() {
                    watched.push(dir);
                }
            }
            if current == applied {
                continue;
            }
            applied = current;
            // A refused reload is logged by reload_snapshot; the running snapshot keeps serving.
            if let Ok(snapshot) = super::reload_snapshot(&gateway).await {
                tracing::info!(generation = snapshot.generation, "reloaded after a file change");
            }
        }
    });
    Ok(Some(SourceWatch { task }))
}
