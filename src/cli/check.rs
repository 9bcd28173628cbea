//! `cedar-sidecar check`: the policy tools' `check` (policies, schema and
//! entities, every problem with file:line:column), plus the gateway route
//! map and signing keys when `--routes` is given, and the policy tools'
//! analysis with `--analyze`.

use std::io::Write;

use clap::Args;

use cedar_policy_tools::analyze::AnalyzeArgs;
use cedar_policy_tools::check::{check, with_analysis, EXIT_INVALID, EXIT_OK};

use crate::config::PackArgs;
use crate::engine::PolicyPack;

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckCommand {
    #[command(flatten)]
    pack: PackArgs,
    /// With `--routes`: the gateway route map and keys are checked too.
    #[command(flatten)]
    gateway: crate::gateway::GatewayArgs,
    #[command(flatten)]
    analysis: AnalyzeArgs,
}

/// Runs `check`, printing a report; returns the exit code.
pub fn run_check(args: &CheckCommand) -> i32 {
    match check(&args.pack)
        .and_then(|summary| check_gateway(&args.pack, &args.gateway, summary))
        .and_then(|summary| with_analysis(&args.pack, &args.analysis, summary))
    {
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
