//! Where a policy is written: `file:line:column` of its first character,
//! the way every other problem in a pack is reported.

use crate::diagnostics::line_column;
use crate::engine::PolicyFiles;

/// `path:line:column` of policy `id` (the path as the user gave it); the
/// file alone when the parser kept no position.
pub fn policy_location(files: &PolicyFiles, id: &str) -> String {
    let Some(info) = files.info(id) else {
        return id.to_string();
    };
    let shown = files
        .display_paths
        .get(&info.file)
        .cloned()
        .unwrap_or_else(|| info.file.clone());
    let offset = files
        .set
        .policy(&cedar_policy::PolicyId::new(id))
        .map(|p| p.as_ref().loc().map(|loc| loc.start()))
        .or_else(|| {
            files
                .set
                .template(&cedar_policy::PolicyId::new(id))
                .map(|t| t.as_ref().loc().map(|loc| loc.start()))
        })
        .flatten();
    match (offset, files.sources.get(&info.file)) {
        (Some(offset), Some(source)) => {
            let (line, column) = line_column(source, offset);
            format!("{shown}:{line}:{column}")
        }
        _ => shown,
    }
}
