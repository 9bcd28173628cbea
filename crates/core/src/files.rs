//! Finding the files a folder holds: policies, schema fragments, test
//! files, files to format. One walker and one filter for all of them, so
//! they agree on what a folder means, and a folder that cannot be read is an
//! error, never silently skipped.
//!
//! Hidden entries (names starting with `.`) are skipped below the root:
//! editors' temporary files, and the `..data` / `..<timestamp>` folders a
//! Kubernetes ConfigMap mount keeps beside its symlinks (reading those too
//! would load every policy twice). Symlinks are followed, since a
//! ConfigMap's visible files are symlinks into those folders.

use std::path::{Path, PathBuf};

/// A folder (or a file in it) that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read `{}`: {message}", path.display())]
pub struct WalkError {
    /// What could not be read.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// How deep to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The folder's own files only.
    Top,
    /// Subfolders too.
    Recursive,
}

/// The files under `root` (or `root` itself, when it is a file) for which
/// `wanted` holds, sorted by path.
pub fn files_under(
    root: &Path,
    depth: Depth,
    wanted: impl Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, WalkError> {
    let metadata = std::fs::metadata(root).map_err(|error| WalkError {
        path: root.to_path_buf(),
        message: error.to_string(),
    })?;
    if metadata.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut walker = walkdir::WalkDir::new(root).follow_links(true);
    if depth == Depth::Top {
        walker = walker.max_depth(1);
    }
    let mut files = Vec::new();
    for entry in walker
        .into_iter()
        .filter_entry(|entry| entry.depth() == 0 || !is_hidden(entry.file_name()))
    {
        let entry = entry.map_err(|error| WalkError {
            path: error
                .path()
                .map_or_else(|| root.to_path_buf(), Path::to_path_buf),
            message: error
                .io_error()
                .map_or_else(|| error.to_string(), ToString::to_string),
        })?;
        if entry.file_type().is_file() && wanted(entry.path()) {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Whether `path` ends with `.suffix` (suffixes with dots, like
/// `cedarschema.json`, included).
pub fn has_suffix(path: &Path, suffix: &str) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| {
            name.len() > suffix.len() + 1
                && name.ends_with(suffix)
                && name[..name.len() - suffix.len()].ends_with('.')
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn configmap_folders_are_read_once_through_their_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("..2026_11_29/nested")).unwrap();
        std::fs::write(root.join("..2026_11_29/a.cedar"), "").unwrap();
        std::fs::write(root.join("..2026_11_29/nested/b.cedar"), "").unwrap();
        std::os::unix::fs::symlink("..2026_11_29", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/a.cedar", root.join("a.cedar")).unwrap();
        std::os::unix::fs::symlink("..data/nested", root.join("nested")).unwrap();
        std::fs::write(root.join(".a.cedar.swp"), "").unwrap();
        std::fs::write(root.join("notes.txt"), "").unwrap();
        let found = files_under(root, Depth::Recursive, |p| has_suffix(p, "cedar")).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.cedar", "nested/b.cedar"]);
        let top = files_under(root, Depth::Top, |p| has_suffix(p, "cedar")).unwrap();
        assert_eq!(top.len(), 1);
    }

    #[test]
    fn an_unreadable_folder_is_an_error_and_a_file_is_itself() {
        let error =
            files_under(Path::new("/no/such/folder"), Depth::Recursive, |_| true).unwrap_err();
        assert!(error.to_string().contains("/no/such/folder"), "{error}");
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert_eq!(files_under(&file, Depth::Top, |_| false).unwrap(), [file]);
    }

    #[test]
    fn suffixes_match_whole_dotted_endings() {
        assert!(has_suffix(
            Path::new("a/x.cedarschema.json"),
            "cedarschema.json"
        ));
        assert!(has_suffix(Path::new("x.cedar"), "cedar"));
        assert!(!has_suffix(Path::new("x.notcedar"), "cedar"));
        assert!(!has_suffix(Path::new(".cedar"), "cedar"));
    }
}
