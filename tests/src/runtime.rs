//! A minimal Lambda Runtime API, enough to run a real lifeboat binary as
//! Lambda would: it hands out the given events one by one and collects each
//! response or error. Built once for every function in the workspace with
//! `cargo build --workspace --bins` (which `make test` runs).

use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the function answered to one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Response(Value),
    /// `{"errorType": ..., "errorMessage": ...}` as the runtime reports it.
    Error(Value),
}

impl Invocation {
    pub fn response(self) -> Value {
        match self {
            Invocation::Response(v) => v,
            Invocation::Error(e) => panic!("the function failed: {e}"),
        }
    }

    /// A request answered as rejected (no retry can mend it): its
    /// `error_type` and `reason`.
    pub fn rejection(self) -> (String, String) {
        let r = self.response();
        assert_eq!(r["outcome"], "rejected", "{r}");
        let field = |name: &str| r[name].as_str().unwrap_or_default().to_string();
        (field("error_type"), field("reason"))
    }

    /// The `errorType` of an error, `None` for a response.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            Invocation::Error(e) => e["errorType"].as_str(),
            Invocation::Response(_) => None,
        }
    }

    pub fn error_message(self) -> String {
        match self {
            Invocation::Error(e) => e["errorMessage"].as_str().unwrap_or_default().to_string(),
            Invocation::Response(v) => panic!("expected an error, got {v}"),
        }
    }
}

/// The outcome of running a binary over a list of events.
#[derive(Debug)]
pub struct Run {
    pub invocations: Vec<Invocation>,
    /// The error the binary reported at init (e.g. bad configuration).
    pub init_error: Option<Value>,
    /// The exit code if the binary exited by itself.
    pub exit_code: Option<i32>,
    /// The binary's peak resident memory (VmHWM), in KiB, when it was stopped.
    pub peak_rss_kib: Option<u64>,
    /// What the binary printed: its logs and EMF metric lines.
    pub stdout: String,
    pub stderr: String,
    /// When each event was handed to the function (wall clock).
    pub handed_out: Vec<std::time::SystemTime>,
}

#[derive(Default)]
struct State {
    events: VecDeque<(String, Value)>,
    results: Vec<Invocation>,
    init_error: Option<Value>,
    handed_out: Vec<std::time::SystemTime>,
}

/// The path of a workspace binary, next to this test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// Runs the binary `name` with `env` (on top of a clean environment) and feeds
/// it `events` in order; returns once every event is answered, the binary
/// exits, or `timeout` passes.
pub fn invoke(name: &str, env: &[(String, String)], events: &[Value], timeout: Duration) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let state = Arc::new(Mutex::new(State {
        events: events.iter().enumerate().map(|(i, e)| (format!("request-{i}"), e.clone())).collect(),
        ..State::default()
    }));
    {
        let state = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
    }
    let mut child = Command::new(binary(name))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", &address)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained as it comes, so a chatty binary never blocks on a full pipe.
    let stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        BufReader::new(stdout).read_to_string(&mut text).unwrap_or_default();
        text
    });
    let deadline = Instant::now() + timeout;
    loop {
        let done = {
            let s = state.lock().unwrap();
            s.results.len() == events.len() || s.init_error.is_some()
        };
        if done || Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let exit_code = child.try_wait().unwrap().and_then(|status| status.code());
    let peak_rss_kib = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok().and_then(|status| {
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    });
    let _ = child.kill();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let _ = child.wait();
    let stdout = stdout.join().unwrap_or_default();
    let mut s = state.lock().unwrap();
    Run {
        invocations: std::mem::take(&mut s.results),
        init_error: s.init_error.take(),
        exit_code,
        peak_rss_kib,
        stdout,
        stderr,
        handed_out: std::mem::take(&mut s.handed_out),
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let path = request_line.split(' ').nth(1).unwrap_or_default().to_string();

        if path.ends_with("/runtime/invocation/next") {
            // Hand out the next event, or hold the binary here until it is killed.
            let next = loop {
                if let Some(next) = state.lock().unwrap().events.pop_front() {
                    break next;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let (id, event) = next;
            state.lock().unwrap().handed_out.push(std::time::SystemTime::now());
            let payload = event.to_string();
            let deadline =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 900_000;
            let _ = write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:eu-west-1:123456789012:function:test\r\nContent-Length: {}\r\n\r\n{payload}",
                payload.len()
            );
        } else {
            {
                let mut s = state.lock().unwrap();
                if path.ends_with("/response") {
                    s.results.push(Invocation::Response(body));
                } else if path.ends_with("/init/error") {
                    s.init_error = Some(body);
                } else if path.ends_with("/error") {
                    s.results.push(Invocation::Error(body));
                }
            }
            let _ = write!(writer, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        }
    }
}
