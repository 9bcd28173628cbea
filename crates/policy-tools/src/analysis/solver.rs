//! The SMT solver behind `diff` and `check --analyze`.
//!
//! Cedar's symbolic compiler writes SMT-LIB to a solver process's stdin and
//! reads its answers from stdout. It was built against cvc5 1.3; Debian's
//! `cvc5` package (1.0.3) answers every query it asks here (z3 4.8 does
//! not: it has no theory of finite sets). The command is `cvc5` on the
//! `PATH` unless `--solver` (or `CEDAR_SIDECAR_SOLVER`) names another
//! executable that speaks cvc5's command line (`--lang smt`,
//! `--tlimit-per=MS`).

use std::path::PathBuf;
use std::time::Duration;

use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::CedarSymCompiler;
use clap::Args;

/// Solver settings shared by `diff` and `check --analyze`.
#[derive(Debug, Clone, Args)]
pub struct SolverArgs {
    /// The SMT solver executable (cvc5, or one that takes cvc5's options).
    #[arg(long, env = "CEDAR_SIDECAR_SOLVER", default_value = "cvc5")]
    pub solver: PathBuf,
    /// Longest one solver query may take, in seconds; a query that runs
    /// out proves nothing (reported as unknown, never as "same").
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub solver_timeout: u64,
}

/// A symbolic compiler talking to one solver process.
pub type Prover = CedarSymCompiler<LocalSolver>;

impl SolverArgs {
    /// Starts the solver process and the compiler on it; the error says
    /// what to install.
    pub fn start(&self) -> Result<Prover, String> {
        let limit = Duration::from_secs(self.solver_timeout).as_millis();
        let mut command = tokio::process::Command::new(&self.solver);
        command
            .args(["--lang", "smt", &format!("--tlimit-per={limit}")])
            .kill_on_drop(true);
        let solver = LocalSolver::from_command(&mut command).map_err(|error| {
            format!(
                "cannot start the SMT solver `{}`: {error} (install cvc5, e.g. `apt-get install cvc5`, or name one with --solver)",
                self.solver.display()
            )
        })?;
        CedarSymCompiler::new(solver)
            .map_err(|error| format!("cannot start the symbolic compiler: {error}"))
    }
}

/// The one-thread runtime that drives the compiler's async API (a CLI run
/// asks one query at a time of one solver process).
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start a runtime for the solver: {error}"))
}

/// A solver failure in one line (cvc5's messages can be long).
pub fn solver_error(error: &cedar_policy_symcc::err::Error) -> String {
    let text = error.to_string();
    let source = std::error::Error::source(error).map(ToString::to_string);
    match source {
        Some(source) if !text.contains(&source) => format!("{text}: {source}"),
        _ => text,
    }
}
