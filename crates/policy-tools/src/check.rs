//! `cedar-sidecar check`: the security team's compiler. Parses everything,
//! validates policies strictly against the schema and entities against the
//! schema, and prints every problem with file:line:column.

use std::io::Write;

use clap::Args;

use crate::engine::PolicyPack;
use crate::entities::load_entities_file;
use crate::paths::PackArgs;

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckCommand {
    #[command(flatten)]
    pack: PackArgs,
}

/// Exit code when everything is valid.
pub const EXIT_OK: i32 = 0;
/// Exit code when policies, schema or entities have problems.
pub const EXIT_INVALID: i32 = 1;

/// Runs `check`, printing a report; returns the exit code.
pub fn run_check(args: &CheckCommand) -> i32 {
    match check(&args.pack) {
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
