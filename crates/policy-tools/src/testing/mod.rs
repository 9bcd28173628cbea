//! Policy unit tests: the runner behind `cedar-sidecar test`.
//!
//! Test files come in two formats, both turned into the same [`TestCase`]s:
//! Cedar's own `cedar run-tests` JSON ([`cedar_json`]) and a compact YAML of
//! decision tables ([`yaml`]). The runner ([`run`]) depends only on the
//! engine's narrow decide interface ([`crate::engine::decide`] over a
//! [`crate::engine::PolicyPack`] and an [`crate::entities::EntityMap`]), so a
//! test decides exactly as `serve` would. [`report`] renders results for
//! people, JSON and JUnit.

mod case;
pub mod cedar_json;
mod discover;
mod names;
mod report;
mod run;
pub mod yaml;
mod yaml_node;
mod yaml_rows;

pub use case::{ErrorCheck, Expectation, ReasonCheck, TestCase};
pub use discover::{discover, load_test_file, TestFile};
pub use report::{render_human, render_json, render_junit, summary_line, xml, OutputFormat};
pub use run::{run_suite, CaseResult, Coverage, RunReport, Status, UncoveredPolicy};
