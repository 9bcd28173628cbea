//! The file watcher: reloads when the policies folder, the schema, the
//! entities file or the gateway's route map and key files change on disk, after a quiet period (editors and
//! deployments write in bursts).
//!
//! Paths are watched as configured, never through their resolved symlinks:
//! a Kubernetes ConfigMap mount is a folder of symlinks into `..data`,
//! itself a symlink to a timestamped folder that the kubelet replaces on
//! every update (new folder, `..data` swapped by rename, old folder
//! removed). Watching the resolved folder would see one update and then
//! nothing. So a file is watched through its folder (non-recursive), where
//! the swap of `..data` shows, and every watched folder's parent is watched
//! too: a folder removed and created again (`rm -rf policies/` and a
//! restore) is watched again once it reappears.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::Reloader;

/// Watches the pack and the entities file, reloading after `debounce` of
/// quiet, until the returned [`Watching`] is dropped.
pub fn watch(reloader: Arc<Reloader>, debounce: Duration) -> notify::Result<Watching> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
    let paths = Paths::new(&reloader);
    let classify = paths.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let pending = event.paths.iter().fold(Pending::default(), |acc, path| {
            acc.or(classify.classify(path))
        });
        if pending != Pending::default() {
            let _ = tx.send(pending);
        }
    })?;
    let mut folders = paths.folders();
    for folder in &mut folders {
        folder.establish(&mut watcher)?;
    }
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut pending = first;
            // Debounce: keep collecting until the files have been quiet.
            while let Ok(Some(more)) = tokio::time::timeout(debounce, rx.recv()).await {
                pending = pending.or(more);
            }
            // A folder that went away and came back is watched again before
            // the reload reads it, so no later edit is missed.
            for folder in &mut folders {
                folder.refresh(&mut watcher);
            }
            if pending.policies {
                let _ = reloader.reload_policies().await;
            }
            if pending.entities {
                let _ = reloader.reload_entities().await;
            }
        }
    });
    Ok(Watching { task })
}

/// Keeps the watcher running; dropping it stops watching.
pub struct Watching {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a batch of file events asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Pending {
    policies: bool,
    entities: bool,
}

impl Pending {
    fn or(self, other: Self) -> Self {
        Self {
            policies: self.policies || other.policies,
            entities: self.entities || other.entities,
        }
    }
}

/// The configured paths, absolute but with symlinks left unresolved (event
/// paths are built from the watched paths, so they compare as written).
#[derive(Clone)]
struct Paths {
    policies: PathBuf,
    schema: PathBuf,
    schema_is_dir: bool,
    entities: Option<PathBuf>,
    links: Option<PathBuf>,
    /// The gateway's route map and key files: they reload with the pack.
    gateway: Vec<PathBuf>,
    /// The shadow policy folder: it reloads with the pack.
    shadow: Option<PathBuf>,
}

impl Paths {
    fn new(reloader: &Reloader) -> Self {
        let schema = absolute(&reloader.sources.schema);
        Self {
            policies: absolute(&reloader.sources.policies),
            schema_is_dir: schema.is_dir(),
            schema,
            entities: reloader.entities_file.as_deref().map(absolute),
            links: reloader.links_file.as_deref().map(absolute),
            gateway: reloader
                .gateway_files()
                .iter()
                .map(|f| absolute(f))
                .collect(),
            shadow: reloader.shadow_folder().as_deref().map(absolute),
        }
    }

    fn classify(&self, path: &Path) -> Pending {
        let schema = if self.schema_is_dir {
            path.starts_with(&self.schema)
        } else {
            touches_file(path, &self.schema)
        };
        let gateway = self.gateway.iter().any(|file| touches_file(path, file));
        let shadow = self
            .shadow
            .as_ref()
            .is_some_and(|folder| path.starts_with(folder));
        Pending {
            policies: path.starts_with(&self.policies) || schema || gateway || shadow,
            entities: [&self.entities, &self.links]
                .into_iter()
                .flatten()
                .any(|file| touches_file(path, file)),
        }
    }

    /// Folders to watch: the policies folder (recursive), the schema folder
    /// or the folder holding the schema file, the entities file's folder,
    /// and the parent of each (to see them removed and created again).
    fn folders(&self) -> Vec<Folder> {
        let mut folders: Vec<Folder> = Vec::new();
        let mut add = |path: PathBuf, mode: RecursiveMode, required: bool| match folders
            .iter_mut()
            .find(|f| f.path == path)
        {
            Some(known) => {
                known.required |= required;
                if mode == RecursiveMode::Recursive {
                    known.mode = mode;
                }
            }
            None => folders.push(Folder {
                path,
                mode,
                required,
                identity: None,
            }),
        };
        add(self.policies.clone(), RecursiveMode::Recursive, true);
        if let Some(shadow) = &self.shadow {
            add(shadow.clone(), RecursiveMode::Recursive, true);
            add(parent_of(shadow), RecursiveMode::NonRecursive, false);
        }
        add(
            parent_of(&self.policies),
            RecursiveMode::NonRecursive,
            false,
        );
        let schema_folder = if self.schema_is_dir {
            self.schema.clone()
        } else {
            parent_of(&self.schema)
        };
        add(
            parent_of(&schema_folder),
            RecursiveMode::NonRecursive,
            false,
        );
        add(schema_folder, RecursiveMode::NonRecursive, true);
        let files = [&self.entities, &self.links].into_iter().flatten();
        for file in files.chain(&self.gateway) {
            let folder = parent_of(file);
            add(parent_of(&folder), RecursiveMode::NonRecursive, false);
            add(folder, RecursiveMode::NonRecursive, true);
        }
        folders
    }
}

/// True when an event at `path` may have changed `file`: the file itself,
/// a folder holding it (removed or created again), or a hidden entry
/// (`..data`, `..data_tmp`, `..<timestamp>`) of its folder, which is how a
/// ConfigMap update shows.
fn touches_file(path: &Path, file: &Path) -> bool {
    if file.starts_with(path) {
        return true;
    }
    path.parent() == file.parent()
        && path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(".."))
}

/// One watched folder and the identity of the folder the watch is on.
struct Folder {
    path: PathBuf,
    mode: RecursiveMode,
    /// Failing to watch it at start-up is an error (a configured folder);
    /// otherwise (a parent) it is only logged.
    required: bool,
    /// Device and inode of the folder watched, `None` when not watched.
    identity: Option<(u64, u64)>,
}

impl Folder {
    fn establish(&mut self, watcher: &mut RecommendedWatcher) -> notify::Result<()> {
        match watcher.watch(&self.path, self.mode) {
            Ok(()) => {
                self.identity = identity(&self.path);
                Ok(())
            }
            Err(error) if self.required => Err(error),
            Err(error) => {
                tracing::debug!(path = %self.path.display(), %error, "cannot watch folder");
                Ok(())
            }
        }
    }

    /// Watches the folder again if it is not the one watched any more
    /// (removed, or removed and created again).
    fn refresh(&mut self, watcher: &mut RecommendedWatcher) {
        let now = identity(&self.path);
        if now == self.identity {
            return;
        }
        // The old watch may be gone with its folder; removing it again is harmless.
        let _ = watcher.unwatch(&self.path);
        self.identity = None;
        if now.is_some() {
            match watcher.watch(&self.path, self.mode) {
                Ok(()) => {
                    self.identity = now;
                    tracing::info!(path = %self.path.display(), "watching a folder that came back");
                }
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "cannot watch folder again")
                }
            }
        }
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

/// The path made absolute without resolving symlinks.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configmap_swap_touches_the_files_of_its_folder_only() {
        let file = Path::new("/etc/cedar/schema.cedarschema");
        assert!(touches_file(file, file));
        assert!(touches_file(Path::new("/etc/cedar/..data"), file));
        assert!(touches_file(Path::new("/etc/cedar/..2026_11_29_1"), file));
        assert!(!touches_file(Path::new("/etc/cedar/other.json"), file));
        assert!(!touches_file(Path::new("/etc/..data"), file));
        assert!(
            touches_file(Path::new("/etc/cedar"), file),
            "its folder, recreated"
        );
    }
}
