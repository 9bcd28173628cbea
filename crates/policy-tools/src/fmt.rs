//! `cedar-sidecar fmt`: formats `.cedar` files with Cedar's own formatter
//! (`cedar-policy-formatter`, the same engine as `cedar format`), which keeps
//! comments. `--check` changes nothing and fails naming the files that would
//! change, for CI.

use std::path::{Path, PathBuf};

use cedar_policy_formatter::{policies_str_to_pretty, Config};
use clap::Args;

use crate::files::{files_under, has_suffix, Depth};

use crate::paths::DEFAULT_POLICIES;

/// Arguments of `fmt`.
#[derive(Debug, Args)]
pub struct FmtCommand {
    /// Change nothing; exit non-zero and name the files that are not formatted.
    #[arg(long)]
    check: bool,
    /// `.cedar` files or folders (searched recursively); the policies folder when none.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Everything is (now) formatted.
pub const EXIT_OK: i32 = 0;
/// `--check`: some file would change.
pub const EXIT_UNFORMATTED: i32 = 1;
/// A file could not be read, parsed or written.
pub const EXIT_ERROR: i32 = 2;

/// Runs `fmt`; returns the exit code.
pub fn run_fmt(args: &FmtCommand) -> i32 {
    let roots = if args.paths.is_empty() {
        vec![PathBuf::from(DEFAULT_POLICIES)]
    } else {
        args.paths.clone()
    };
    let mut files = Vec::new();
    for root in &roots {
        match files_under(root, Depth::Recursive, |p| has_suffix(p, "cedar")) {
            Ok(found) => files.extend(found),
            Err(error) => {
                eprintln!("error: {error}");
                return EXIT_ERROR;
            }
        }
    }
    files.sort();
    files.dedup();
    let mut code = EXIT_OK;
    let mut unformatted = 0;
    for file in &files {
        match format_file(file, args.check) {
            Ok(false) => {}
            Ok(true) if args.check => {
                emit(&format!("would reformat {}\n", file.display()));
                unformatted += 1;
            }
            Ok(true) => emit(&format!("formatted {}\n", file.display())),
            Err(message) => {
                eprintln!("error: {}: {message}", file.display());
                code = EXIT_ERROR;
            }
        }
    }
    if code == EXIT_OK && unformatted > 0 {
        eprintln!(
            "{unformatted} file{} not formatted; run `cedar-sidecar fmt`",
            if unformatted == 1 { " is" } else { "s are" }
        );
        code = EXIT_UNFORMATTED;
    }
    code
}

/// Formats one file; `Ok(true)` when its text changes (or would, with `check`).
fn format_file(path: &Path, check: bool) -> Result<bool, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let formatted = format_text(&text)?;
    if formatted == text {
        return Ok(false);
    }
    if !check {
        std::fs::write(path, &formatted).map_err(|e| format!("cannot write: {e}"))?;
    }
    Ok(true)
}

/// Cedar's formatting of a policy file's text (80 columns, 2-space indent).
pub fn format_text(text: &str) -> Result<String, String> {
    policies_str_to_pretty(text, &Config::default()).map_err(|report| {
        let mut message = report.to_string();
        for cause in report.chain().skip(1) {
            message.push_str(&format!(": {cause}"));
        }
        message
    })
}

/// Writes to stdout; a closed pipe is not worth a panic.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
