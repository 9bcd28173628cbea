//! Documentation runs: every command in README.md and docs/*.md is executed
//! here, so a doc that drifts from the binary is a failing test.
//!
//! The contract with the docs' authors:
//! - ```` ```console ```` blocks: a line starting with `$ ` is a command (a
//!   line ending in `\` or inside an open `'...'` continues it); the lines
//!   after it, up to the next command, are its expected output, where `…`
//!   stands for anything. A command exits 0 unless its expected output
//!   shows an `error:`.
//! - ```` ```sh ```` blocks: every line is a command (comments allowed); each
//!   must exit 0.
//! - ```` ```toml ```` blocks are configuration files: `serve --config` must
//!   accept them.
//! - ```` ```text ```` and other blocks are not run (synopses, file formats);
//!   indented code blocks are refused, so nothing untested slips in.
//!
//! Commands run in a scratch copy of the repository, with `cedar-sidecar`
//! and `cargo run [-q] --` replaced by the built binary, ports 8180 and 8181
//! by free ones, and `redis://127.0.0.1:6379` by a `redis-server` this test
//! starts. A `serve` runs in the background until its block ends; a block
//! that calls `curl` without starting one gets a default `serve`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::loopback::free_port;
use crate::support::repo;

/// Commands that cannot run here, each with the reason. Every entry must
/// still match a documented command, so the list cannot outlive the docs.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "bash scripts/test.sh",
        "the test command itself: it runs this test",
    ),
    (
        "CEDAR_FUZZ_CASES=",
        "a longer run of tests/it/fuzz.rs, which the test command runs bounded",
    ),
    (
        "bash bench/run.sh",
        "release builds and minutes of load; tests/it/bench_http.rs runs the harness",
    ),
    (
        "cargo bench",
        "release builds and minutes of load; the criterion suite builds with --all-targets",
    ),
    (
        "cargo build --release",
        "a release build takes minutes; CI builds debug",
    ),
    ("target/release/", "needs the release build above"),
];

struct Block {
    origin: String,
    lang: String,
    indent: usize,
    lines: Vec<String>,
}

/// The fenced blocks of a Markdown file, and the places of indented code
/// blocks (refused).
fn blocks(path: &Path) -> (Vec<Block>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path
        .strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string();
    let mut blocks = Vec::new();
    let mut indented = Vec::new();
    let mut current: Option<Block> = None;
    let mut previous_blank = true;
    for (index, line) in text.lines().enumerate() {
        let origin = format!("{name}:{}", index + 1);
        if let Some(block) = current.as_mut() {
            if line.trim_start().starts_with("```") {
                blocks.extend(current.take());
            } else {
                // Inside a list item, the fence's indentation is not the block's.
                let indent = block.indent.min(line.len() - line.trim_start().len());
                block.lines.push(line[indent..].to_string());
            }
            continue;
        }
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            current = Some(Block {
                origin,
                lang: lang.trim().to_string(),
                indent: line.len() - line.trim_start().len(),
                lines: Vec::new(),
            });
        } else if previous_blank
            && line.starts_with("    ")
            && !line.trim().is_empty()
            && !in_list(&text, index)
        {
            indented.push(origin);
        }
        previous_blank = line.trim().is_empty();
    }
    (blocks, indented)
}

/// Whether line `index` continues a list item (an indented paragraph, not code).
fn in_list(text: &str, index: usize) -> bool {
    let before: Vec<&str> = text.lines().take(index).collect();
    before
        .into_iter()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("    "))
        .is_some_and(|l| {
            l.starts_with("- ")
                || l.starts_with("* ")
                || l.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
}

struct Step {
    origin: String,
    command: String,
    expected: Vec<String>,
}

/// A command is complete when its single quotes balance and it does not
/// end with a backslash.
fn complete(command: &str) -> bool {
    command.matches('\'').count().is_multiple_of(2) && !command.trim_end().ends_with('\\')
}

fn steps(block: &Block) -> Vec<Step> {
    let console = block.lang == "console";
    let mut steps: Vec<Step> = Vec::new();
    let mut open = false;
    for (offset, line) in block.lines.iter().enumerate() {
        if open {
            let step = steps.last_mut().unwrap();
            step.command.push('\n');
            step.command.push_str(line);
            open = !complete(&step.command);
            continue;
        }
        let command = if console {
            line.strip_prefix("$ ")
        } else {
            let trimmed = line.trim();
            (!trimmed.is_empty() && !trimmed.starts_with('#')).then_some(line.as_str())
        };
        match command {
            Some(command) => {
                let (file, start) = block.origin.rsplit_once(':').unwrap();
                let line_number: usize = start.parse::<usize>().unwrap() + offset + 1;
                steps.push(Step {
                    origin: format!("{file}:{line_number}"),
                    command: command.to_string(),
                    expected: Vec::new(),
                });
                open = !complete(command);
            }
            None if console => {
                if let Some(step) = steps.last_mut() {
                    if !line.trim().is_empty() {
                        step.expected.push(line.to_string());
                    }
                }
            }
            None => {}
        }
    }
    steps
}

/// Whether `actual` holds the expected text, `…` standing for anything and
/// runs of blanks compared as one.
fn shows(expected: &[String], actual: &str) -> bool {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let actual = squash(actual);
    let mut rest = actual.as_str();
    for part in squash(&expected.join("\n")).split('…') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Where a doc run happens: a scratch copy of the repository, its ports,
/// and a Redis started when a command names one.
struct Scratch {
    dir: tempfile::TempDir,
    ports: [SocketAddr; 2],
    redis: Option<(Child, u16)>,
    background: Vec<Child>,
}

impl Scratch {
    fn new() -> Self {
        let scratch = Self {
            dir: tempfile::tempdir().unwrap(),
            ports: [free_port(), free_port()],
            redis: None,
            background: Vec::new(),
        };
        scratch.reset_files();
        scratch
    }

    /// A fresh copy of the files the docs use: a block that edits a policy
    /// (to show an error) does not change the next block's.
    fn reset_files(&self) {
        for part in [
            "policies",
            "schema",
            "demo",
            "tests",
            "examples",
            "deploy",
            "gateway",
            "Dockerfile",
        ] {
            let target = self.dir.path().join(part);
            if target.is_dir() {
                std::fs::remove_dir_all(&target).unwrap();
            }
            copy(&repo().join(part), &target);
        }
    }

    fn redis_port(&mut self) -> u16 {
        if let Some((_, port)) = &self.redis {
            return *port;
        }
        let port = free_port().port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (the test command installs it)");
        wait_for(SocketAddr::from(([127, 0, 0, 1], port)));
        self.redis = Some((child, port));
        port
    }

    /// The command as it runs here.
    fn rewrite(&mut self, command: &str) -> String {
        let binary = env!("CARGO_BIN_EXE_cedar-sidecar");
        let mut text = command.to_string();
        // The policy tools' own binary sits beside the sidecar's (the test
        // command builds the whole workspace).
        // `cargo build --workspace --bins` (scripts/test.sh) builds it.
        let tools = std::path::Path::new(binary).with_file_name("cedar-policy-tools");
        text = text.replace(
            "cargo run -q -p cedar-policy-tools --",
            &tools.display().to_string(),
        );
        for prefix in ["cargo run -q --", "cargo run --"] {
            text = text.replace(prefix, binary);
        }
        if text.starts_with("cedar-sidecar ") {
            text = text.replacen("cedar-sidecar", binary, 1);
        }
        text = text.replace(" cedar-sidecar ", &format!(" {binary} "));
        if text.contains("redis://127.0.0.1:6379") {
            let port = self.redis_port();
            text = text.replace(
                "redis://127.0.0.1:6379",
                &format!("redis://127.0.0.1:{port}"),
            );
        }
        for (documented, port) in [(8180, self.ports[0]), (8181, self.ports[1])] {
            for host in ["localhost", "127.0.0.1", "0.0.0.0"] {
                text = text.replace(
                    &format!("{host}:{documented}"),
                    &format!("127.0.0.1:{}", port.port()),
                );
            }
        }
        text
    }

    fn bash(&self, command: &str) -> Command {
        let mut bash = Command::new("bash");
        bash.args(["-c", command])
            .current_dir(self.dir.path())
            .env("CEDAR_SIDECAR_LISTEN", self.ports[0].to_string())
            .env_remove("CEDAR_SIDECAR_ADMIN_TOKEN")
            .stdin(Stdio::null());
        bash
    }

    /// Starts `serve` in the background and waits until it listens.
    fn serve(&mut self, command: &str, origin: &str) {
        let address = if command.contains(&self.ports[1].port().to_string()) {
            self.ports[1]
        } else {
            self.ports[0]
        };
        let child = self
            .bash(&format!("exec {command}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.background.push(child);
        assert!(
            ready(address),
            "{origin}: `{command}` did not get ready on {address}"
        );
    }

    fn end_block(&mut self) {
        for mut child in self.background.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.reset_files();
        // Each block starts from an empty dataset.
        if let Some((_, port)) = &self.redis {
            let mut redis = TcpStream::connect(("127.0.0.1", *port)).unwrap();
            redis.write_all(b"FLUSHALL\r\n").unwrap();
            let mut reply = [0u8; 5];
            redis.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"+OK\r\n");
        }
        // The next block's servers bind the same ports.
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.end_block();
        if let Some((mut child, _)) = self.redis.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `/readyz` answers 200 (a Redis replica has its snapshot).
fn ready(address: SocketAddr) -> bool {
    if !wait_for(address) {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if crate::loopback::http(address, "GET", "/readyz", "", &[]).0 == 200 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn wait_for(address: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(address).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else if from.exists() {
        std::fs::copy(from, to).unwrap();
    }
}

/// README.md, docs/*.md, and each example pack's README.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    for pack in std::fs::read_dir(repo().join("examples/packs")).unwrap() {
        let readme = pack.unwrap().path().join("README.md");
        if readme.exists() {
            docs.push(readme);
        }
    }
    docs.sort();
    files.extend(docs);
    files
}

/// The longest a documented command may take (a `serve` written in a way
/// this test does not recognise would otherwise hang it).
const COMMAND_BOUND: Duration = Duration::from_secs(120);

/// Runs `command` to its end, or kills it after [`COMMAND_BOUND`].
fn run_bounded(mut command: Command) -> Option<std::process::Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes meanwhile, so a talkative command does not block.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + COMMAND_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Some(std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    })
}

fn is_serve(command: &str) -> bool {
    command.split_whitespace().nth(1) == Some("serve")
        && !command.contains("--print-config")
        && !command.contains("--help")
}

#[test]
fn every_documented_command_runs_as_documented() {
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut exempt_used = vec![false; NOT_RUN.len()];
    let mut scratch = Scratch::new();
    for document in documents() {
        let (blocks, indented) = blocks(&document);
        for origin in indented {
            failures.push(format!(
                "{origin}: an indented code block; use a fenced ```console, ```sh or ```text block"
            ));
        }
        for block in blocks {
            match block.lang.as_str() {
                "console" | "sh" => {}
                "toml" => {
                    let file = scratch.dir.path().join("doc.toml");
                    std::fs::write(&file, block.lines.join("\n")).unwrap();
                    let output = scratch
                        .bash(&format!(
                            "{} serve --config doc.toml --print-config",
                            env!("CARGO_BIN_EXE_cedar-sidecar")
                        ))
                        .output()
                        .unwrap();
                    ran += 1;
                    if !output.status.success() {
                        failures.push(format!(
                            "{}: `serve --config` refuses this file: {}",
                            block.origin,
                            String::from_utf8_lossy(&output.stderr)
                        ));
                    }
                    continue;
                }
                _ => continue,
            }
            let steps = steps(&block);
            if steps.is_empty() {
                failures.push(format!(
                    "{}: a `{}` block with no command",
                    block.origin, block.lang
                ));
            }
            let serves = steps.iter().any(|s| is_serve(&scratch.rewrite(&s.command)));
            if !serves
                && steps
                    .iter()
                    .any(|s| s.command.trim_start().starts_with("curl"))
            {
                let default = format!(
                    "{} serve --watch false",
                    env!("CARGO_BIN_EXE_cedar-sidecar")
                );
                scratch.serve(&default, &block.origin);
            }
            for step in steps {
                if let Some(index) = NOT_RUN
                    .iter()
                    .position(|(prefix, _)| step.command.trim_start().starts_with(prefix))
                {
                    exempt_used[index] = true;
                    continue;
                }
                let command = scratch.rewrite(&step.command);
                ran += 1;
                if is_serve(&command) {
                    scratch.serve(&command, &step.origin);
                    continue;
                }
                if block.lang == "console"
                    && step.command.trim_start().starts_with("curl")
                    && step.expected.is_empty()
                {
                    failures.push(format!(
                        "{}: show what `curl` answers (curl exits 0 on any HTTP status)",
                        step.origin
                    ));
                }
                let Some(output) = run_bounded(scratch.bash(&command)) else {
                    failures.push(format!(
                        "{}: `{}` did not finish within {COMMAND_BOUND:?}",
                        step.origin, step.command
                    ));
                    continue;
                };
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                let documented_failure = step.expected.iter().any(|l| l.contains("error:"));
                if output.status.success() == documented_failure {
                    failures.push(format!(
                        "{}: `{}` exited {:?}:\n{text}",
                        step.origin,
                        step.command,
                        output.status.code()
                    ));
                } else if !shows(&step.expected, &text) {
                    failures.push(format!(
                        "{}: `{}` printed\n{text}\nnot\n{}",
                        step.origin,
                        step.command,
                        step.expected.join("\n")
                    ));
                }
            }
            scratch.end_block();
        }
    }
    for ((prefix, _), used) in NOT_RUN.iter().zip(exempt_used) {
        if !used {
            failures.push(format!(
                "NOT_RUN names `{prefix}`, which no document shows any more"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the documented commands fail:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(ran > 20, "only {ran} documented commands found");
}

#[test]
fn the_matcher_reads_ellipses_and_blanks() {
    let expected = vec![r#"{"decision":"Allow",…"revision":1,…}"#.to_string()];
    assert!(shows(
        &expected,
        r#"{"decision":"Allow","x":1,"revision":1,"y":2}"#
    ));
    assert!(!shows(&expected, r#"{"decision":"Deny","revision":1}"#));
    assert!(!shows(&expected, r#"{"revision":1,"decision":"Allow"}"#));
    let block = Block {
        origin: "x.md:1".into(),
        lang: "console".into(),
        indent: 0,
        lines: vec![
            "$ curl -d '{".into(),
            "  \"a\": 1}'".into(),
            "{\"b\":2}".into(),
            "$ echo done".into(),
        ],
    };
    let steps = steps(&block);
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].command, "curl -d '{\n  \"a\": 1}'");
    assert_eq!(steps[0].expected, vec!["{\"b\":2}".to_string()]);
    assert_eq!(steps[1].origin, "x.md:5");
}
