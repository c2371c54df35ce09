//! Structured logs: one JSON object per line on stdout (docs/api.md, "Logs").
//!
//! Two kinds of lines share one writer: `tracing` events (JSON, flattened) and the per-request
//! summary line written by [`request_line`], which carries the seed's ten standard fields with
//! `null` where unknown. Tests swap the writer for a buffer to assert on what was logged —
//! including that no secret ever appears.

use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone)]
enum Sink {
    Stdout,
    Buffer(Arc<Mutex<Vec<u8>>>),
}

static SINK: OnceLock<Sink> = OnceLock::new();

#[derive(Clone)]
pub struct SinkWriter(Sink);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0 {
            Sink::Stdout => std::io::stdout().lock().write(buf),
            Sink::Buffer(b) => {
                if let Ok(mut v) = b.lock() {
                    v.extend_from_slice(buf);
                }
                Ok(buf.len())
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &self.0 {
            Sink::Stdout => std::io::stdout().lock().flush(),
            Sink::Buffer(_) => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for SinkWriter {
    type Writer = SinkWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn sink() -> Sink {
    SINK.get().cloned().unwrap_or(Sink::Stdout)
}

fn install(s: Sink) {
    let _ = SINK.set(s.clone());
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(SinkWriter(sink()))
        .try_init();
}

/// Production logging: JSON lines on stdout.
pub fn init() {
    install(Sink::Stdout);
}

/// Test logging: everything goes to a process-wide buffer; returns it. Idempotent.
pub fn capture() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buf = BUF.get_or_init(|| Arc::new(Mutex::new(Vec::new()))).clone();
    install(Sink::Buffer(buf.clone()));
    buf
}

/// Captured lines parsed as JSON (tests).
pub fn captured_lines(buf: &Arc<Mutex<Vec<u8>>>) -> Vec<Value> {
    let text = buf
        .lock()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub struct RequestSummary<'a> {
    pub ctx: &'a crate::context::RequestCtx,
    pub method: &'a str,
    pub path: &'a str,
    pub route: Option<&'a str>,
    pub http_status: u16,
    pub latency_ms: u64,
    /// [`credential_hash`] of the Authorization header, if one was sent.
    pub auth_hash: Option<String>,
}

/// A short, stable id of a credential (first 16 hex digits of its SHA-256): lets an operator
/// follow one token's requests across log lines without the token ever being written.
pub fn credential_hash(credential: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(credential)[..8])
}

/// The summary line as written. The fields are in alphabetical order, the order the line had
/// when it was assembled as a JSON map, so serializing this straight into the output buffer
/// writes the same bytes without building (and then cloning) a map per request.
#[derive(Serialize)]
struct Line<'a> {
    auth_hash: Option<&'a str>,
    course_id: Option<&'a str>,
    db_round_trips: u32,
    enrollment_id: Option<&'a str>,
    error_code: Option<&'static str>,
    function_name: Option<&'static str>,
    http_status: u16,
    latency_ms: u64,
    level: &'static str,
    message: &'static str,
    method: &'a str,
    order_id: Option<&'a str>,
    path: &'a str,
    provider: Option<&'static str>,
    provider_tx_id: Option<&'a str>,
    request_id: &'a str,
    route: Option<&'a str>,
    status: &'a str,
    timestamp: &'a str,
    trace_id: Option<&'a str>,
    user_id: Option<&'a str>,
}

/// Write the one summary line of a request.
pub fn request_line(s: RequestSummary<'_>) {
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut text = s.ctx.with_fields(|f| {
        let line = Line {
            auth_hash: s.auth_hash.as_deref(),
            course_id: f.course_id.as_deref(),
            db_round_trips: s.ctx.roundtrips(),
            enrollment_id: f.enrollment_id.as_deref(),
            error_code: f.error_code,
            function_name: f.function_name,
            http_status: s.http_status,
            latency_ms: s.latency_ms,
            level: if s.http_status >= 500 {
                "ERROR"
            } else {
                "INFO"
            },
            message: "request",
            method: s.method,
            order_id: f.order_id.as_deref(),
            path: s.path,
            provider: f.provider,
            provider_tx_id: f.provider_tx_id.as_deref(),
            request_id: s.ctx.request_id(),
            route: s.route,
            status: f
                .status
                .as_deref()
                .unwrap_or(if s.http_status < 400 { "ok" } else { "error" }),
            timestamp: &timestamp,
            trace_id: s.ctx.trace_id(),
            user_id: f.user_id.as_deref(),
        };
        // Plain strings and numbers only: serializing cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    });
    text.push('\n');
    let _ = SinkWriter(sink()).write_all(text.as_bytes());
    text.pop();
    crate::ops::recent::push(text);
}
