//! Structured logs: one JSON object per line on stdout (docs/api.md, "Logs").
//!
//! Two kinds of lines share one writer: `tracing` events (JSON, flattened) and the per-request
//! summary line written by [`request_line`], which carries the seed's ten standard fields with
//! `null` where unknown. Tests swap the writer for a buffer to assert on what was logged —
//! including that no secret ever appears.

use serde_json::{Map, Value, json};
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

/// Write the one summary line of a request.
pub fn request_line(s: RequestSummary<'_>) {
    let f = s.ctx.fields();
    let status = f
        .status
        .clone()
        .unwrap_or_else(|| if s.http_status < 400 { "ok" } else { "error" }.to_owned());
    let mut line = Map::new();
    let ts = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    for (k, v) in [
        ("timestamp", json!(ts)),
        (
            "level",
            json!(if s.http_status >= 500 {
                "ERROR"
            } else {
                "INFO"
            }),
        ),
        ("message", json!("request")),
        ("request_id", json!(s.ctx.request_id())),
        ("function_name", json!(f.function_name)),
        ("provider", json!(f.provider)),
        ("provider_tx_id", json!(f.provider_tx_id)),
        ("enrollment_id", json!(f.enrollment_id)),
        ("course_id", json!(f.course_id)),
        ("user_id", json!(f.user_id)),
        ("status", json!(status)),
        ("error_code", json!(f.error_code)),
        ("latency_ms", json!(s.latency_ms)),
        ("http_status", json!(s.http_status)),
        ("method", json!(s.method)),
        ("path", json!(s.path)),
        ("route", json!(s.route)),
        ("order_id", json!(f.order_id)),
        ("trace_id", json!(s.ctx.trace_id())),
        ("db_round_trips", json!(s.ctx.roundtrips())),
        ("auth_hash", json!(s.auth_hash)),
    ] {
        line.insert(k.to_owned(), v);
    }
    let line = Value::Object(line);
    crate::ops::recent::push(&line);
    let mut text = line.to_string();
    text.push('\n');
    let _ = SinkWriter(sink()).write_all(text.as_bytes());
}
