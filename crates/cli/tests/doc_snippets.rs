//! Docs that run: every ```` ```sh ```` block of README.md and docs/*.md is executed against a
//! live development server, so a walkthrough or runbook that drifts from the code fails CI.
//!
//! - One `coursepay serve` (SQLite in a temporary directory, the built-in Toss sandbox) on a
//!   free port, started from the binary this crate builds; that binary's directory is first on
//!   `PATH`, as after `cargo install --path crates/cli`.
//! - The docs are written for the default address `127.0.0.1:8080`; the runner substitutes the
//!   address its server really listens on (the only rewrite it makes).
//! - One bash session per file, in a fresh working directory, so variables set by one block are
//!   seen by the next. Each block runs with `set -euo pipefail`, stdin from /dev/null, and a
//!   timeout (`DOCS_BLOCK_TIMEOUT_SECS`, default 60). The first failing block of a file ends that
//!   file; the report names the block's `file:line`, the failing command with its exit status
//!   and `file:line` (an ERR trap records them), the block, its stderr and its stdout.
//! - Blocks tagged `console`, `text` (or any tag but `sh`) are shown, not run. A fence without a
//!   tag is refused, so a shell block cannot escape the runner by omission.
//! - The server and shells get a clean environment (PATH, HOME, a random JWT_SECRET shared by
//!   the server and `coursepay token`), never the test process's DATABASE_URL & co.
//!
//! `DOCS_ONLY=README.md` (a file name) runs one file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A fenced code block: its tag, the 1-based line of its opening fence, its text.
#[derive(Debug, Clone, PartialEq)]
struct Block {
    tag: String,
    line: usize,
    text: String,
}

/// Fenced blocks of a Markdown text, fences indented (inside list items) or not. The block's
/// lines lose the fence's indentation.
fn fenced_blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize, usize, String, String)> = None; // tag, line, indent, fence, text
    for (i, raw) in markdown.lines().enumerate() {
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        match &mut open {
            None => {
                let fence_len = trimmed.chars().take_while(|c| *c == '`').count();
                if fence_len >= 3 {
                    let tag = trimmed[fence_len..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    open = Some((tag, i + 1, indent, "`".repeat(fence_len), String::new()));
                }
            }
            Some((tag, line, fence_indent, fence, text)) => {
                if trimmed.starts_with(fence.as_str()) && trimmed.trim_end() == fence.as_str() {
                    if tag.is_empty() {
                        return Err(format!(
                            "line {line}: a fenced block without a tag: tag it sh (run by the \
                             tests), console or text (shown only)"
                        ));
                    }
                    blocks.push(Block {
                        tag: std::mem::take(tag),
                        line: *line,
                        text: std::mem::take(text),
                    });
                    open = None;
                } else {
                    let cut = indent.min(*fence_indent);
                    text.push_str(&raw[cut..]);
                    text.push('\n');
                }
            }
        }
    }
    if let Some((_, line, ..)) = open {
        return Err(format!("line {line}: a fenced block is never closed"));
    }
    Ok(blocks)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md, then docs/*.md in name order.
fn doc_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    let mut files = vec![root.join("README.md")];
    files.extend(docs);
    if let Ok(only) = std::env::var("DOCS_ONLY") {
        files.retain(|f| f.file_name().is_some_and(|n| n.to_string_lossy() == only));
    }
    files
}

fn display(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// A unique scratch directory.
fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("coursepay-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The clean environment of the server and the doc shells.
fn base_env(cmd: &mut Command, bin_dir: &Path, jwt_secret: &str) {
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
    );
    cmd.env_clear()
        .env("PATH", path)
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .env("JWT_SECRET", jwt_secret);
}

/// Kill a process group (the child was started as its leader).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

fn start_server(bin: &Path, dir: &Path, jwt_secret: &str) -> Server {
    use std::os::unix::process::CommandExt;
    let log = dir.join("serve.log");
    let mut cmd = Command::new(bin);
    base_env(&mut cmd, bin.parent().unwrap(), jwt_secret);
    let child = cmd
        .arg("serve")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("coursepay.db").display()),
        )
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("serve.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .expect("starting coursepay serve");
    let mut server = Server {
        child,
        addr: String::new(),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&server.log).unwrap_or_default();
        // Only a whole line: the log may be read while the line is being written.
        if let Some((addr, _)) = text
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_once('\n'))
        {
            server.addr = addr.trim().to_owned();
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("coursepay serve exited with {status} before listening:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "coursepay serve did not listen within 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One file's bash session.
struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    dir: PathBuf,
}

impl Session {
    fn start(bin: &Path, dir: &Path, jwt_secret: &str) -> Session {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("bash");
        base_env(&mut cmd, bin.parent().unwrap(), jwt_secret);
        let mut child = cmd
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("bash.stderr")).unwrap())
            .process_group(0)
            .spawn()
            .expect("starting bash");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Session {
            child,
            stdin,
            lines,
            dir: dir.to_owned(),
        }
    }

    /// Run block `n`: Ok(its stdout) or how it failed.
    fn run(&mut self, n: usize, text: &str, timeout: Duration) -> Result<String, Box<Failure>> {
        let file = |ext: &str| self.dir.join(format!(".block-{n}.{ext}"));
        let (script, out, err, at) = (file("sh"), file("out"), file("err"), file("at"));
        std::fs::write(&script, text).unwrap();
        let marker = format!("__COURSEPAY_DOC_BLOCK_DONE__ {n}");
        // errexit inside the group ends the session: the block failed. The block's own output
        // goes to files so it can never be confused with the marker. The ERR trap (inherited by
        // functions: -E) fires where errexit does and records where; it also fires inside
        // command substitutions without ending anything, so it records the subshell depth and
        // only the last record of the session's own shell (depth 0) counts.
        let trap = format!(
            r#"printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$?" "$BASH_SUBSHELL" "${{BASH_SOURCE[0]:-}}" "$LINENO" "${{FUNCNAME[0]:-}}" "${{BASH_SOURCE[1]:-}}:${{BASH_LINENO[0]:-}}" "${{BASH_COMMAND//$'\n'/ }}" >>'{}'"#,
            at.display()
        );
        let command = format!(
            "{{ set -Eeuo pipefail; trap {} ERR; source '{}'; }} </dev/null >'{}' 2>'{}'; trap - ERR; set +Eeuo pipefail; echo '{marker}'\n",
            shell_quote(&trap),
            script.display(),
            out.display(),
            err.display(),
        );
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        let failure = |why: String| Failure {
            why,
            at: FailedAt::parse(&read(&at)),
            stdout: read(&out),
            stderr: read(&err),
        };
        if self.stdin.write_all(command.as_bytes()).is_err() {
            return Err(Box::new(failure("the shell had already exited".into())));
        }
        let _ = self.stdin.flush();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == marker => return Ok(read(&out)),
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    kill_group(&mut self.child);
                    // The last command that failed is not the one that hung: only the output
                    // can tell.
                    return Err(Box::new(Failure {
                        at: None,
                        ..failure(format!("timed out after {} s", timeout.as_secs()))
                    }));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(Box::new(failure(format!("failed ({status})"))));
                }
            }
        }
    }
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// How a block failed.
#[derive(Debug)]
struct Failure {
    why: String,
    /// The command that ended it, when bash reported one (an unset variable or a syntax error
    /// ends the shell without a failing command: bash's message on stderr says where).
    at: Option<FailedAt>,
    stdout: String,
    stderr: String,
}

/// A line of one of the session's block scripts (`.block-<n>.sh`), 1-based.
#[derive(Debug, Clone, PartialEq)]
struct ScriptLine {
    block: usize,
    line: usize,
}

impl ScriptLine {
    /// From bash's `BASH_SOURCE` path and line number.
    fn parse(source: &str, line: &str) -> Option<ScriptLine> {
        let name = source.rsplit('/').next()?;
        let block = name
            .strip_prefix(".block-")?
            .strip_suffix(".sh")?
            .parse()
            .ok()?;
        Some(ScriptLine {
            block,
            line: line.parse().ok()?,
        })
    }
}

/// The failing command, as the ERR trap recorded it.
#[derive(Debug, Clone, PartialEq)]
struct FailedAt {
    status: String,
    line: Option<ScriptLine>,
    /// The function it failed in and where that was called, when not at a block's top level.
    function: Option<(String, Option<ScriptLine>)>,
    command: String,
}

impl FailedAt {
    /// The last record of the session's own shell.
    fn parse(records: &str) -> Option<FailedAt> {
        records.lines().rev().find_map(|record| {
            let fields: Vec<&str> = record.splitn(7, '\t').collect();
            let [status, "0", source, line, function, caller, command] = fields[..] else {
                return None;
            };
            let (caller_source, caller_line) = caller.rsplit_once(':').unwrap_or(("", ""));
            Some(FailedAt {
                status: status.to_owned(),
                line: ScriptLine::parse(source, line),
                function: (!function.is_empty() && function != "source").then(|| {
                    (
                        function.to_owned(),
                        ScriptLine::parse(caller_source, caller_line),
                    )
                }),
                command: command.to_owned(),
            })
        })
    }

    /// E.g. "`kill -0 $PID` exited with status 1 at README.md:12 (in start, called at
    /// README.md:20)"; `fences[n]` is the line of block n's opening fence in `name`.
    fn describe(&self, name: &str, fences: &[usize]) -> String {
        let place = |at: &Option<ScriptLine>| match at {
            Some(s) if s.block < fences.len() => format!("{name}:{}", fences[s.block] + s.line),
            _ => "an unknown line".to_owned(),
        };
        let mut text = format!(
            "`{}` exited with status {} at {}",
            self.command,
            self.status,
            place(&self.line)
        );
        if let Some((function, caller)) = &self.function {
            text.push_str(&format!(" (in {function}, called at {})", place(caller)));
        }
        text
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn every_sh_block_of_the_docs_runs() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_coursepay"));
    let timeout = Duration::from_secs(
        std::env::var("DOCS_BLOCK_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let jwt_secret = format!("docs-runner-{}", uuid::Uuid::new_v4().simple());
    let root = scratch("docs");
    let server = start_server(&bin, &root, &jwt_secret);

    let mut failures = Vec::new();
    let (mut ran, mut files_with_blocks) = (0, 0);
    for file in doc_files() {
        let name = display(&file);
        let markdown = std::fs::read_to_string(&file).unwrap();
        let blocks = match fenced_blocks(&markdown) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let runnable: Vec<&Block> = blocks.iter().filter(|b| b.tag == "sh").collect();
        if runnable.is_empty() {
            continue;
        }
        files_with_blocks += 1;
        let dir = root.join(name.replace('/', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut session = Session::start(&bin, &dir, &jwt_secret);
        for (n, block) in runnable.iter().enumerate() {
            let text = block.text.replace("127.0.0.1:8080", &server.addr);
            let started = Instant::now();
            match session.run(n, &text, timeout) {
                Ok(_) => {
                    ran += 1;
                    eprintln!(
                        "ok   {name}:{} ({} ms)",
                        block.line,
                        started.elapsed().as_millis()
                    );
                }
                Err(failure) => {
                    let skipped = runnable.len() - n - 1;
                    let server_log = std::fs::read_to_string(&server.log).unwrap_or_default();
                    let fences: Vec<usize> = runnable.iter().map(|b| b.line).collect();
                    let at = match &failure.at {
                        Some(at) => at.describe(&name, &fences),
                        None => "no failing command recorded (a timeout, an unset variable or \
                                 a syntax error: see stderr, where bash counts lines from the \
                                 block's first line)"
                            .to_owned(),
                    };
                    eprintln!("FAIL {name}:{} {}: {at}", block.line, failure.why);
                    failures.push(format!(
                        "{name}:{}: the block {}{}\n{at}\n--- block ---\n{}--- its stderr (last 30 lines) ---\n{}\n--- its stdout (last 20 lines) ---\n{}\n--- server log (last 15 lines) ---\n{}",
                        block.line,
                        failure.why,
                        if skipped > 0 {
                            format!("; the {skipped} later block(s) of {name} were not run")
                        } else {
                            String::new()
                        },
                        block.text,
                        tail(&failure.stderr, 30),
                        tail(&failure.stdout, 20),
                        tail(&server_log, 15),
                    ));
                    break;
                }
            }
        }
    }
    eprintln!("doc snippets: {ran} blocks run in {files_with_blocks} files");
    assert!(
        failures.is_empty(),
        "{} doc file(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // The runner itself must not pass by finding nothing.
    if std::env::var("DOCS_ONLY").is_err() {
        assert!(
            ran >= 10 && files_with_blocks >= 3,
            "only {ran} blocks in {files_with_blocks} files"
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_block_parser() {
    let md = "text\n```sh\necho 1\n```\n- item\n\n  ```console\n  $ x\n  ```\n  ```sh\n  A=1\n    echo $A\n  ```\n````text\n```sh\n````\n";
    let blocks = fenced_blocks(md).unwrap();
    let tags: Vec<&str> = blocks.iter().map(|b| b.tag.as_str()).collect();
    assert_eq!(tags, ["sh", "console", "sh", "text"]);
    assert_eq!(blocks[0].line, 2);
    assert_eq!(blocks[0].text, "echo 1\n");
    assert_eq!(blocks[2].text, "A=1\n  echo $A\n");
    assert_eq!(blocks[3].text, "```sh\n");
    assert!(
        fenced_blocks("```\nls\n```\n")
            .unwrap_err()
            .contains("line 1")
    );
    assert!(
        fenced_blocks("```sh\nls\n")
            .unwrap_err()
            .contains("never closed")
    );
}

/// A variable or function set by one block reaches the next; a failing block is reported with
/// the line and command that ended it and its stderr apart from its stdout.
#[test]
fn a_session_carries_variables_and_reports_failures() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_coursepay"));
    let dir = scratch("docs-session");
    let secs = Duration::from_secs;
    let mut s = Session::start(&bin, &dir, "x");
    assert_eq!(s.run(0, "A=41\n", secs(10)).unwrap(), "");
    assert_eq!(s.run(1, "echo $((A + 1))\n", secs(10)).unwrap(), "42\n");
    // An unset variable fails the block; bash says where on stderr, no command failed.
    let failure = s.run(2, "echo $NOPE\n", secs(10)).unwrap_err();
    assert!(failure.why.contains("failed"), "{failure:?}");
    assert!(
        failure.stderr.contains("NOPE: unbound variable"),
        "{failure:?}"
    );
    assert_eq!(failure.at, None);

    // A failure inside a pipeline fails the block, at its line.
    let mut s = Session::start(&bin, &dir, "x");
    let failure = s
        .run(0, "echo before\nfalse | cat\necho after\n", secs(10))
        .unwrap_err();
    assert_eq!(failure.stdout, "before\n");
    let at = failure.at.unwrap();
    assert_eq!(
        (at.status.as_str(), at.line),
        ("1", Some(ScriptLine { block: 0, line: 2 }))
    );

    // A function of an earlier block fails: where in it, and where it was called. A command
    // substitution's own failure before that is not the one reported.
    let mut s = Session::start(&bin, &dir, "x");
    s.run(
        0,
        "# a helper\nf() {\n  echo oops >&2\n  test 1 = 2\n}\n",
        secs(10),
    )
    .unwrap();
    let failure = s
        .run(
            1,
            "x=$(false; echo y)\necho \"$x\"\nf\necho after\n",
            secs(10),
        )
        .unwrap_err();
    assert_eq!(
        (failure.stdout.as_str(), failure.stderr.as_str()),
        ("y\n", "oops\n")
    );
    let at = failure.at.unwrap();
    assert_eq!(
        at.describe("README.md", &[10, 20]),
        "`test 1 = 2` exited with status 1 at README.md:14 (in f, called at README.md:23)"
    );

    let mut s = Session::start(&bin, &dir, "x");
    let failure = s.run(0, "sleep 30\n", secs(1)).unwrap_err();
    assert!(failure.why.contains("timed out"), "{failure:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn only_the_session_shells_failure_record_counts() {
    let records = "1\t1\t/d/.block-0.sh\t3\tsource\t/d/.block-0.sh:0\tfalse\n\
                   2\t0\t/d/.block-1.sh\t7\tsource\t:0\tcurl -f x\n\
                   1\t2\t/d/.block-1.sh\t9\tsource\t:0\tfalse\n";
    let at = FailedAt::parse(records).unwrap();
    assert_eq!(at.line, Some(ScriptLine { block: 1, line: 7 }));
    assert_eq!(at.function, None);
    assert_eq!(
        at.describe("README.md", &[1, 40]),
        "`curl -f x` exited with status 2 at README.md:47"
    );
    assert_eq!(
        FailedAt::parse("1\t1\t/d/.block-0.sh\t3\tsource\t:0\tfalse\n"),
        None
    );
}
