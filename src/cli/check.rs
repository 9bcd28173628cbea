//! `cedar-sidecar check`: the security team's compiler. Parses everything,
//! validates policies strictly against the schema and entities against the
//! schema, and prints every problem with file:line:column.

use std::io::Write;

use clap::Args;

use crate::config::PackArgs;
use crate::engine::PolicyPack;
use crate::entities::load_entities_file;

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckCommand {
    #[command(flatten)]
    pack: PackArgs,
    /// With `--routes`: the gateway route map and keys are checked too.
    #[command(flatten)]
    gateway: crate::gateway::GatewayArgs,
}

/// Exit code when everything is valid.
pub const EXIT_OK: i32 = 0;
/// Exit code when policies, schema or entities have problems.
pub const EXIT_INVALID: i32 = 1;

/// Runs `check`, printing a report; returns the exit code.
pub fn run_check(args: &CheckCommand) -> i32 {
    match check(&args.pack).and_then(|summary| check_gateway(&args.pack, &args.gateway, summary)) {
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

/// With a route map configured, checks it (and the keys) against the pack.
fn check_gateway(
    pack_args: &PackArgs,
    gateway: &crate::gateway::GatewayArgs,
    summary: String,
) -> Result<String, String> {
    let config = match gateway.config() {
        Ok(Some(config)) => config,
        Ok(None) => return Ok(summary),
        Err((key, message)) => {
            return Err(format!("error: invalid configuration: `{key}` {message}\n"))
        }
    };
    let pack = PolicyPack::load(&pack_args.sources()).map_err(|p| p.render())?;
    let gateway = crate::gateway::Gateway::start(config, &pack)?;
    let status = gateway.status();
    Ok(format!(
        "{summary}; route map `{}`: {} routes, {} signing keys",
        status.routes_file, status.routes, status.keys
    ))
}
