//! `cedar-sidecar links ...`: write, read and export the template links in
//! Redis, written and synced like entities (same script, revision and
//! stream). Every link written is first checked against the templates of
//! the policies (`--policies`, `--schema`): a link to a missing template or
//! with the wrong slot types is reported with file:line:column and nothing
//! is written.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::entities::{run_redis, Failure, JsonArrayOut};
use crate::config::{RedisArgs, DEFAULT_POLICIES, DEFAULT_SCHEMA};
use crate::diagnostics::{Problem, Problems};
use crate::engine::{parse_links, PackSources, PolicyPack};
use crate::sync::{LinkWrite, RedisWriter, SyncError};

/// Arguments of `links`.
#[derive(Debug, Args)]
pub struct LinksCommand {
    #[command(flatten)]
    redis: RedisArgs,
    #[command(subcommand)]
    action: LinksAction,
}

/// What to do with the links.
#[derive(Debug, Subcommand)]
pub enum LinksAction {
    /// Write the links of a file in the Cedar CLI's `--template-linked`
    /// format (`-` = stdin) as one revision; a link with an existing id
    /// replaces it.
    Put {
        /// Links file (a JSON array of template links), or `-`.
        file: PathBuf,
        #[command(flatten)]
        pack: PolicyArgs,
        /// Write only if the current revision is exactly this.
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Delete links by id as one revision.
    Delete {
        /// The link ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Write only if the current revision is exactly this.
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Print one link as stored, with the revision that wrote it.
    Get {
        /// The link id.
        id: String,
    },
    /// Print every stored link as a JSON array (a links file for `--links`).
    Export,
}

/// The policies (templates) and schema links are checked against.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Folder of `*.cedar` policy files holding the templates.
    #[arg(long, env = "CEDAR_SIDECAR_POLICIES", default_value = DEFAULT_POLICIES)]
    policies: PathBuf,
    /// Schema file, or folder of schema files.
    #[arg(long, env = "CEDAR_SIDECAR_SCHEMA", default_value = DEFAULT_SCHEMA)]
    schema: PathBuf,
}

/// Runs `links`; returns the exit code (as `entities`: 0 done, 1 invalid
/// input, 2 Redis unavailable, 3 conflict or no such link).
pub fn run_links(args: LinksCommand) -> i32 {
    run_redis("links", &args.redis, |writer| async move {
        run_action(&writer, args.action).await
    })
}

async fn run_action(writer: &RedisWriter, action: LinksAction) -> Result<(), Failure> {
    match action {
        LinksAction::Put {
            file,
            pack,
            expected_revision,
        } => {
            let writes = read_links(&file, &pack)?;
            let revision = writer.write_links(&writes, expected_revision).await?;
            println!(
                "{}",
                serde_json::json!({ "revision": revision, "written": writes.len() })
            );
        }
        LinksAction::Delete {
            ids,
            expected_revision,
        } => {
            if let Some(empty) = ids.iter().find(|id| id.is_empty()) {
                return Err(Failure::Invalid(format!(
                    "error: `{empty}` is not a link id (ids are non-empty)\n"
                )));
            }
            let writes: Vec<LinkWrite> = ids.iter().map(|id| LinkWrite::delete(id)).collect();
            let revision = writer.write_links(&writes, expected_revision).await?;
            println!(
                "{}",
                serde_json::json!({ "revision": revision, "deleted": writes.len() })
            );
        }
        LinksAction::Get { id } => {
            let record = writer
                .get_link(&id)
                .await?
                .ok_or_else(|| Failure::NotFound(format!("link `{id}`")))?;
            let link: serde_json::Value = serde_json::from_str(&record.json)
                .map_err(|e| SyncError::Malformed(format!("link `{}`: {e}", record.uid)))?;
            println!(
                "{}",
                serde_json::json!({ "link_id": record.uid, "revision": record.revision, "link": link })
            );
        }
        LinksAction::Export => {
            let mut out = JsonArrayOut::new();
            writer.scan_links(|record| out.push(&record.json)).await?;
            out.finish()?;
        }
    }
    Ok(())
}

/// Reads a links file (or stdin) and checks every link against the
/// templates; every problem is rendered with file:line:column.
fn read_links(file: &PathBuf, args: &PolicyArgs) -> Result<Vec<LinkWrite>, Failure> {
    let pack = PolicyPack::load(&PackSources {
        policies: args.policies.clone(),
        schema: args.schema.clone(),
    })
    .map_err(|p| Failure::Invalid(p.render()))?;
    let (shown, text) = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::Invalid(format!("error: cannot read stdin: {e}\n")))?;
        ("<stdin>".to_string(), text)
    } else {
        let shown = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| {
            Failure::Invalid(
                Problems(vec![Problem::message(
                    &shown,
                    format!("cannot read links file: {e}"),
                )])
                .render(),
            )
        })?;
        (shown, text)
    };
    let text: Arc<str> = text.into();
    let links = parse_links(&shown, &text, &pack).map_err(|p| Failure::Invalid(p.render()))?;
    let mut writes: Vec<LinkWrite> = links.iter().map(|link| LinkWrite::put(link)).collect();
    // Stable order: the stream entry lists them as the file's ids sort.
    writes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(writes)
}
