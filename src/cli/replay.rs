//! `cedar-sidecar replay`: decides every request recorded in decision logs
//! again against a candidate policy set and the current entities (a file,
//! or a snapshot of the Redis dataset), and reports the decisions that flip.
//! Exit code 1 when any does, unless `--allow-flips`: CI then needs a
//! reviewer's consent to ship a change that alters real decisions.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::config::RedisArgs;
use crate::engine::{check_link, load_links_file, PackSources, PolicyPack};
use crate::entities::{
    load_entities_file, parse_entities_text, parse_link, EntityMap, LinkMap, StoredEntity,
};
use crate::replay::{render, replay, ReplayFormat, ReplayOptions};
use cedar_policy_tools::paths::{DEFAULT_ENTITIES, DEFAULT_SCHEMA};

/// Exit code: no decision flips (or they are allowed).
pub const EXIT_OK: i32 = 0;
/// Exit code: decisions flip.
pub const EXIT_FLIPS: i32 = 1;
/// Exit code: the inputs are unusable (policies, entities, an unreadable
/// log, malformed lines unless `--allow-malformed`).
pub const EXIT_INVALID: i32 = 2;

/// Arguments of `replay`.
#[derive(Debug, Args)]
pub struct ReplayCommand {
    /// Decision log files (`-` for stdin), read in order; rotated files
    /// (`decisions.log.1`, ...) are logs like any other.
    #[arg(long = "decisions", required = true, num_args = 1..)]
    decisions: Vec<PathBuf>,
    /// The candidate policy folder.
    #[arg(long)]
    policies: PathBuf,
    /// Schema file, or folder of schema fragments.
    #[arg(long, env = "CEDAR_SIDECAR_SCHEMA", default_value = DEFAULT_SCHEMA)]
    schema: PathBuf,
    /// Entities file to decide against (ignored with `--redis-url`).
    #[arg(long, env = "CEDAR_SIDECAR_ENTITIES", default_value = DEFAULT_ENTITIES)]
    entities: PathBuf,
    /// Template links file, checked against the candidate's templates
    /// (with `--redis-url`, the links stored in Redis are used instead).
    #[arg(long, env = "CEDAR_SIDECAR_LINKS")]
    links: Option<PathBuf>,
    #[command(flatten)]
    redis: RedisArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: ReplayFormat,
    /// Exit 0 even when decisions flip (a reviewer accepted them).
    #[arg(long)]
    allow_flips: bool,
    /// Exit 0 (or 1 for flips) even when some lines are not decision
    /// records; they are still reported with file:line:column.
    #[arg(long)]
    allow_malformed: bool,
    /// Examples shown per flip group (the first ones by file and line).
    #[arg(long, default_value_t = 3)]
    examples: usize,
    /// Worker threads [default: every core].
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `replay`; returns the exit code.
pub fn run_replay(args: &ReplayCommand) -> i32 {
    let sources = PackSources {
        policies: args.policies.clone(),
        schema: args.schema.clone(),
    };
    let pack = match PolicyPack::load(&sources) {
        Ok(pack) => pack,
        Err(problems) => {
            eprint!("{}", problems.render());
            eprintln!("error: the candidate policies do not load");
            return EXIT_INVALID;
        }
    };
    let entities = match current_entities(args, &pack) {
        Ok(entities) => entities,
        Err(report) => {
            eprint!("{report}");
            return EXIT_INVALID;
        }
    };
    let mut options = ReplayOptions {
        examples: args.examples,
        ..ReplayOptions::default()
    };
    if let Some(threads) = args.threads {
        options.threads = threads.max(1);
    }
    let started = std::time::Instant::now();
    let mut report = match replay(&pack, &entities, &args.decisions, &options) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_INVALID;
        }
    };
    let elapsed = started.elapsed();
    report.policies = args.policies.clone();
    report.allow_flips = args.allow_flips;
    tracing::info!(
        records = report.records,
        replayed = report.replayed,
        seconds = elapsed.as_secs_f64(),
        per_second = report.records as f64 / elapsed.as_secs_f64().max(1e-9),
        threads = options.threads,
        "replay finished"
    );
    // A closed pipe (`replay | head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(render(&report, args.format).as_bytes());
    if !report.malformed.is_empty() && !args.allow_malformed {
        eprintln!(
            "error: {} lines are not decision records (listed above); fix or remove them, or pass --allow-malformed",
            report.malformed.len()
        );
        return EXIT_INVALID;
    }
    if report.flipped > 0 && !args.allow_flips {
        return EXIT_FLIPS;
    }
    EXIT_OK
}

/// The entities to decide against: the file, or with `--redis-url` the
/// stored dataset read with `HSCAN` (the current data, though not at one
/// revision if writes happen meanwhile), checked against the schema.
fn current_entities(args: &ReplayCommand, pack: &PolicyPack) -> Result<EntityMap, String> {
    if args.redis.enabled() {
        if args.links.is_some() {
            return Err(
                "error: with --redis-url the template links are the ones stored in Redis; leave out --links\n"
                    .to_string(),
            );
        }
        let (entities, links) = redis_entities(&args.redis, pack)?;
        return Ok(EntityMap::from_entities(entities, 1).with_links(links));
    }
    let entities = load_entities_file(&args.entities, &pack.schema).map_err(|p| p.render())?;
    let links = match &args.links {
        Some(path) => load_links_file(path, pack).map_err(|p| p.render())?,
        None => LinkMap::default(),
    };
    Ok(EntityMap::from_entities(entities, 1).with_links(links))
}

/// The template links stored in Redis, each checked against the candidate:
/// a link that cannot be read, or that the candidate's templates do not
/// take, stops the replay (serve would deny where it applies, or refuse the
/// candidate; replaying without it would hide a linked forbid).
fn redis_links(
    runtime: &tokio::runtime::Runtime,
    writer: &crate::sync::RedisWriter,
    pack: &PolicyPack,
) -> Result<LinkMap, String> {
    let mut values = Vec::new();
    runtime
        .block_on(writer.scan_links(|record| values.push((record.uid, record.json))))
        .map_err(|e| format!("error: cannot read template links from Redis: {e}\n"))?;
    let mut links = Vec::new();
    for (id, json) in values {
        let link = serde_json::from_str::<serde_json::Value>(&json)
            .map_err(|e| e.to_string())
            .and_then(|value| parse_link(&value).map_err(|e| e.to_string()))
            .map_err(|message| {
                format!("error: template link `{id}` in Redis cannot be read: {message}\n")
            })?;
        if *link.id != *id {
            return Err(format!(
                "error: template link stored under `{id}` in Redis names itself `{}`\n",
                link.id
            ));
        }
        check_link(pack, &link).map_err(|error| {
            format!("error: template link `{id}` in Redis does not fit the candidate policies: {error}\n")
        })?;
        links.push(link);
    }
    Ok(LinkMap::from_links(links))
}

fn redis_entities(
    redis: &RedisArgs,
    pack: &PolicyPack,
) -> Result<(Vec<StoredEntity>, LinkMap), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("error: cannot start the async runtime: {e}\n"))?;
    let writer = redis.writer().map_err(|e| format!("error: {e}\n"))?;
    let mut text = String::from("[");
    runtime
        .block_on(writer.scan(|record| {
            if text.len() > 1 {
                text.push(',');
            }
            text.push_str(&record.json);
        }))
        .map_err(|e| format!("error: cannot read entities from Redis: {e}\n"))?;
    text.push(']');
    let text: Arc<str> = Arc::from(text);
    let entities = parse_entities_text("redis", &text, &pack.schema).map_err(|p| p.render())?;
    Ok((entities, redis_links(&runtime, &writer, pack)?))
}
