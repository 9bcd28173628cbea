//! `cedar-sidecar entities ...`: write, read and export the entity dataset
//! in Redis. Everything written is first validated against the schema (and
//! parents must exist): a bad entity is reported with file:line:column and
//! nothing is written.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::EntityUid;
use clap::{Args, Subcommand};

use crate::config::{RedisArgs, DEFAULT_SCHEMA};
use crate::diagnostics::{Problem, Problems};
use crate::engine::load_schema;
use crate::entities::{parse_entities_text, StoredEntity};
use crate::sync::{EntityWrite, RedisWriter, SyncError};

/// Arguments of `entities`.
#[derive(Debug, Args)]
pub struct EntitiesCommand {
    #[command(flatten)]
    redis: RedisArgs,
    #[command(subcommand)]
    action: EntitiesAction,
}

/// What to do with the dataset.
#[derive(Debug, Subcommand)]
pub enum EntitiesAction {
    /// Write the entities of a JSON file (`-` = stdin) as one revision.
    Put {
        /// Entities file (a JSON array of Cedar entities), or `-`.
        file: PathBuf,
        #[command(flatten)]
        schema: SchemaArg,
        /// Write only if the current revision is exactly this.
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Delete entities by uid (`User::"alice"`) as one revision.
    Delete {
        /// The uids.
        #[arg(required = true)]
        uids: Vec<String>,
        /// Write only if the current revision is exactly this.
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Bulk-load a large entities file, in batches of consecutive revisions.
    Import {
        /// Entities file (a JSON array of Cedar entities), or `-`.
        file: PathBuf,
        #[command(flatten)]
        schema: SchemaArg,
        /// Entities per revision (at most 1000).
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
    },
    /// Print one entity as stored, with the revision that wrote it.
    Get {
        /// The uid.
        uid: String,
    },
    /// Print every stored entity as a JSON array (an entities file).
    Export,
}

/// The schema entities are validated against.
#[derive(Debug, Args)]
pub struct SchemaArg {
    /// Schema file, or folder of schema files.
    #[arg(long, env = "CEDAR_SIDECAR_SCHEMA", default_value = DEFAULT_SCHEMA)]
    schema: PathBuf,
}

/// Exit code: done.
pub const EXIT_OK: i32 = 0;
/// Exit code: invalid input (nothing written).
pub const EXIT_INVALID: i32 = 1;
/// Exit code: Redis unreachable or failing.
pub const EXIT_UNAVAILABLE: i32 = 2;
/// Exit code: compare-and-set conflict, or the entity does not exist.
pub const EXIT_CONFLICT: i32 = 3;

/// Runs `entities`; returns the exit code.
pub fn run_entities(args: EntitiesCommand) -> i32 {
    run_redis("entities", &args.redis, |writer| async move {
        run_action(&writer, args.action).await
    })
}

/// Starts a runtime and a writer for `redis`, runs `action`, and turns its
/// outcome into a message and an exit code (shared with `links`).
pub(super) fn run_redis<F, Fut>(command: &str, redis: &RedisArgs, action: F) -> i32
where
    F: FnOnce(RedisWriter) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    if !redis.enabled() {
        eprintln!("error: `{command}` needs --redis-url (or CEDAR_SIDECAR_REDIS_URL)");
        return EXIT_INVALID;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return EXIT_UNAVAILABLE;
        }
    };
    let writer = match redis.writer() {
        Ok(writer) => writer,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_INVALID;
        }
    };
    match runtime.block_on(action(writer)) {
        Ok(()) => EXIT_OK,
        Err(Failure::Invalid(report)) => {
            eprint!("{report}");
            eprintln!("nothing was written");
            EXIT_INVALID
        }
        Err(Failure::Store(error @ SyncError::Conflict { .. })) => {
            eprintln!("error: {error}; nothing was written");
            EXIT_CONFLICT
        }
        Err(Failure::Store(error @ SyncError::MissingParents(_))) => {
            eprintln!("error: {error}; nothing was written");
            EXIT_INVALID
        }
        Err(Failure::Store(error)) => {
            eprintln!("error: {error}");
            EXIT_UNAVAILABLE
        }
        Err(Failure::NotFound(what)) => {
            eprintln!("error: no {what}");
            EXIT_CONFLICT
        }
    }
}

/// Why a command did not do what it was asked.
pub(super) enum Failure {
    /// Bad input, rendered (nothing written).
    Invalid(String),
    /// Redis failed or refused.
    Store(SyncError),
    /// What was asked for does not exist (`entity ...` or `link ...`).
    NotFound(String),
}

impl From<SyncError> for Failure {
    fn from(error: SyncError) -> Self {
        Self::Store(error)
    }
}

async fn run_action(writer: &RedisWriter, action: EntitiesAction) -> Result<(), Failure> {
    match action {
        EntitiesAction::Put {
            file,
            schema,
            expected_revision,
        } => {
            let entities = read_entities(&file, &schema)?;
            let revision = writer.put_entities(&entities, expected_revision).await?;
            println!(
                "{}",
                serde_json::json!({ "revision": revision, "written": entities.len() })
            );
        }
        EntitiesAction::Delete {
            uids,
            expected_revision,
        } => {
            let writes = uids
                .iter()
                .map(|text| {
                    EntityUid::from_str(text)
                        .map(|uid| EntityWrite::delete(&uid))
                        .map_err(|e| {
                            Failure::Invalid(format!(
                                "error: `{text}` is not an entity uid like `User::\"alice\"`: {e}\n"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let revision = writer.write(&writes, expected_revision).await?;
            println!(
                "{}",
                serde_json::json!({ "revision": revision, "deleted": writes.len() })
            );
        }
        EntitiesAction::Import {
            file,
            schema,
            batch_size,
        } => {
            let entities = read_entities(&file, &schema)?;
            writer.check_parents(&entities).await?;
            let writes = entities
                .iter()
                .map(EntityWrite::put)
                .collect::<Result<Vec<_>, _>>()?;
            let mut bar = Progress::new(writes.len());
            let revision = writer
                .write_chunked(&writes, batch_size, |done| bar.show(done))
                .await?;
            bar.finish();
            println!(
                "{}",
                serde_json::json!({ "revision": revision, "written": writes.len() })
            );
        }
        EntitiesAction::Get { uid } => {
            let canonical = EntityUid::from_str(&uid)
                .map_err(|e| {
                    Failure::Invalid(format!(
                        "error: `{uid}` is not an entity uid like `User::\"alice\"`: {e}\n"
                    ))
                })?
                .to_string();
            let record = writer
                .get(&canonical)
                .await?
                .ok_or_else(|| Failure::NotFound(format!("entity `{canonical}`")))?;
            let entity: serde_json::Value = serde_json::from_str(&record.json)
                .map_err(|e| SyncError::Malformed(format!("entity `{}`: {e}", record.uid)))?;
            println!(
                "{}",
                serde_json::json!({ "uid": record.uid, "revision": record.revision, "entity": entity })
            );
        }
        EntitiesAction::Export => {
            let mut out = JsonArrayOut::new();
            writer.scan(|record| out.push(&record.json)).await?;
            out.finish()?;
        }
    }
    Ok(())
}

/// Reads and validates an entities file (or stdin); every problem is
/// rendered with file:line:column.
fn read_entities(file: &PathBuf, schema: &SchemaArg) -> Result<Vec<StoredEntity>, Failure> {
    let (schema, _) = load_schema(&schema.schema).map_err(|p| Failure::Invalid(p.render()))?;
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
                    format!("cannot read entities file: {e}"),
                )])
                .render(),
            )
        })?;
        (shown, text)
    };
    let text: Arc<str> = text.into();
    parse_entities_text(&shown, &text, &schema).map_err(|p| Failure::Invalid(p.render()))
}

/// A JSON array written to stdout one element at a time (an export never
/// holds the dataset in memory).
pub(super) struct JsonArrayOut {
    out: std::io::StdoutLock<'static>,
    first: bool,
    result: std::io::Result<()>,
}

impl JsonArrayOut {
    pub(super) fn new() -> Self {
        let mut out = std::io::stdout().lock();
        let result = out.write_all(b"[");
        Self {
            out,
            first: true,
            result,
        }
    }

    pub(super) fn push(&mut self, json: &str) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "\n" } else { ",\n" };
        self.first = false;
        self.result = self
            .out
            .write_all(separator.as_bytes())
            .and_then(|()| self.out.write_all(json.as_bytes()));
    }

    pub(super) fn finish(mut self) -> Result<(), Failure> {
        let result =
            std::mem::replace(&mut self.result, Ok(())).and_then(|()| self.out.write_all(b"\n]\n"));
        result.map_err(|e| Failure::Invalid(format!("error: cannot write output: {e}\n")))
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct Progress {
    total: usize,
    visible: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            visible: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, done: usize) {
        if !self.visible || self.total == 0 {
            return;
        }
        let width = 30;
        let filled = done * width / self.total;
        eprint!(
            "\rimporting [{}{}] {done}/{} ({}%)",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.total,
            done * 100 / self.total
        );
    }

    fn finish(&self) {
        if self.visible {
            eprintln!();
        }
    }
}
