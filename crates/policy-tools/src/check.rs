//! `cedar-sidecar check`: the security team's compiler. Parses everything,
//! validates policies strictly against the schema and entities against the
//! schema, and prints every problem with file:line:column. With
//! `--analyze`, it also proves what the policies can never do
//! ([`crate::analyze`]) and prints it as warnings.

use std::io::Write;

use clap::Args;

use crate::analyze::{analyze, AnalyzeArgs};
use crate::engine::PolicyPack;
use crate::entities::load_entities_file;
use crate::paths::PackArgs;

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckCommand {
    #[command(flatten)]
    pack: PackArgs,
    #[command(flatten)]
    analysis: AnalyzeArgs,
}

/// Exit code when everything is valid.
pub const EXIT_OK: i32 = 0;
/// Exit code when policies, schema or entities have problems.
pub const EXIT_INVALID: i32 = 1;

/// Runs `check`, printing a report; returns the exit code.
pub fn run_check(args: &CheckCommand) -> i32 {
    match check(&args.pack).and_then(|summary| with_analysis(&args.pack, &args.analysis, summary)) {
        Ok(summary) => {
            // A closed pipe (`check | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{summary}");
            EXIT_OK
        }
        Err(report) => {
            eprint!("{report}");
            EXIT_INVALID
        }
    }
}

/// With `--analyze`, proves what the (valid) pack's policies can never do:
/// the warnings go to stderr, their count onto the summary. `Err` when the
/// analysis could not run, or warned under `--deny-warnings`.
pub fn with_analysis(
    pack_args: &PackArgs,
    args: &AnalyzeArgs,
    summary: String,
) -> Result<String, String> {
    if !args.analyze {
        return Ok(summary);
    }
    let pack = PolicyPack::load(&pack_args.sources()).map_err(|p| p.render())?;
    let warnings = analyze(&pack, &args.solver).map_err(|message| format!("error: {message}\n"))?;
    let rendered: String = warnings.iter().map(|w| w.render()).collect();
    let summary = format!(
        "{summary}; analysis: {} warnings (static policies; templates are not analysed)",
        warnings.len()
    );
    if args.deny_warnings && !warnings.is_empty() {
        return Err(format!(
            "{rendered}{summary}\nerror: the analysis warned (--deny-warnings)\n"
        ));
    }
    eprint!("{rendered}");
    Ok(summary)
}

/// Checks a pack and its entities; `Ok` carries a one-line summary, `Err`
/// the rendered problems.
pub fn check(pack_args: &PackArgs) -> Result<String, String> {
    let pack = PolicyPack::load(&pack_args.sources()).map_err(|p| p.render())?;
    let entities = load_entities_file(&pack_args.entities, &pack.schema).map_err(|p| p.render())?;
    Ok(format!(
        "ok: {} policies, {} templates, {} entities, {} actions",
        pack.files.policy_count(),
        pack.files.template_count(),
        entities.len(),
        pack.actions.len()
    ))
}
