//! `make bench-cold`: each release binary's init time, from process start to
//! its first request for work from the Lambda Runtime API (median of 20), its
//! peak memory at that point, and its binary and zip sizes. A benchmark, not a
//! test: it asserts nothing about time.
//!
//! Usage: bench_cold DIR, where DIR/<function>/bootstrap are the binaries
//! (cargo lambda build --release puts them in <target>/lambda).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FUNCTIONS: [&str; 3] = ["scheduled-backup", "retention-pruner", "interruption-handler"];
const RUNS: usize = 20;

/// (time to the first /next request, VmHWM in KiB at that moment)
fn one_start(binary: &PathBuf) -> (Duration, u64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    let elapsed = started.elapsed();
    assert!(line.contains("/runtime/invocation/next"), "unexpected first request: {line}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    (elapsed, hwm)
}

fn zip_size(binary: &PathBuf) -> u64 {
    let out = std::env::temp_dir().join(format!("lifeboat-bench-{}.zip", std::process::id()));
    let status = Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED); z.write(sys.argv[1], 'bootstrap'); z.close()"])
        .arg(binary)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let size = std::fs::metadata(&out).unwrap().len();
    let _ = std::fs::remove_file(&out);
    size
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: bench_cold <dir with <function>/bootstrap>"));
    println!("| function | init time (median of {RUNS}) | min | max | peak memory at init | binary | zip |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for function in FUNCTIONS {
        let binary = dir.join(function).join("bootstrap");
        assert!(binary.exists(), "{} is missing", binary.display());
        let mut runs: Vec<(Duration, u64)> = (0..RUNS).map(|_| one_start(&binary)).collect();
        runs.sort();
        let median = runs[RUNS / 2].0;
        let peak = runs.iter().map(|r| r.1).max().unwrap_or(0);
        println!(
            "| {function} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            median.as_secs_f64() * 1000.0,
            runs[0].0.as_secs_f64() * 1000.0,
            runs[RUNS - 1].0.as_secs_f64() * 1000.0,
            peak as f64 / 1024.0,
            std::fs::metadata(&binary).unwrap().len() as f64 / 1_048_576.0,
            zip_size(&binary) as f64 / 1_048_576.0,
        );
    }
}
