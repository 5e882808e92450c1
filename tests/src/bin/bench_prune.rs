//! `make bench-prune`: retention-pruner on 1,000 and 10,000 images across 20
//! nodes in the emulator, beside the original cron script's pruning logic
//! (tests/bench/original-prune.sh, with the aws CLI) on the same state.
//!
//! Prints a Markdown table. A benchmark, not a test: it asserts nothing about
//! time.

use chrono::{Duration, TimeZone, Utc};
use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, workspace_root};
use serde_json::{Value, json};
use std::time::Instant;

const NODES: usize = 20;
const UNTAGGED: usize = 10;
/// Images of the old script's loop actually timed; the rest is extrapolated.
const SCRIPT_SAMPLE: usize = 20;

/// `count` images spread over 30 days across the nodes, plus a few untagged.
async fn seed(emu: &Emulator, count: usize) {
    let instance = emu.launch(&emu.subnet().await, &[("lifeboat:node", "node-00")]).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap();
    let mut images: Vec<Value> = (0..count)
        .map(|i| {
            let node = format!("node-{:02}", i % NODES);
            let created = now - Duration::minutes((i / NODES) as i64 * 30 * 24 * 60 / (count / NODES) as i64 + 1);
            let name = format!("{node}-{}-{i}", created.format("%Y%m%d-%H%M"));
            json!({"name": name, "creation_date": created.to_rfc3339(),
                   "tags": {"lifeboat:node": node, "Name": name, "lifeboat:kind": "scheduled"}})
        })
        .collect();
    images.extend(
        (0..UNTAGGED).map(|i| json!({"name": format!("golden-base-{i}"), "creation_date": "2026-01-01T00:00:00Z"})),
    );
    for chunk in images.chunks(1000) {
        emu.control("POST", "/lifeboat/seed-images", &json!({"instance_id": instance, "images": chunk}));
    }
}

async fn own_images(emu: &Emulator) -> usize {
    emu.ec2().await.describe_images().owners("self").send().await.unwrap().images().len()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let aws = workspace_root().join(".venv-bench/bin/aws");
    let event =
        json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-26T02:00:00Z", "detail": {}});
    println!("| images | tool | wall time | API calls | peak memory | images left (of which tagged) |");
    println!("| ---: | --- | ---: | ---: | ---: | --- |");
    for count in [1_000, 10_000] {
        // retention-pruner.
        let emu = Emulator::new();
        seed(&emu, count).await;
        let before = emu.total_calls();
        let started = Instant::now();
        let run = invoke(
            "retention-pruner",
            &emu.function_env("retention-pruner"),
            std::slice::from_ref(&event),
            std::time::Duration::from_secs(900),
        );
        let elapsed = started.elapsed();
        let report =
            run.invocations.into_iter().next().unwrap_or_else(|| panic!("no answer: {}", run.stderr)).response();
        let calls = emu.total_calls() - before;
        let kept: usize = report["nodes"].as_array().unwrap().iter().map(|n| n["kept"].as_array().unwrap().len()).sum();
        println!(
            "| {count} | retention-pruner | {:.1} s | {calls} | {:.1} MiB | {} ({kept}) |",
            elapsed.as_secs_f64(),
            run.peak_rss_kib.unwrap_or(0) as f64 / 1024.0,
            own_images(&emu).await,
        );

        // The original script on the same state: its selection in full, its
        // loop on a sample, timed.
        let emu = Emulator::new();
        seed(&emu, count).await;
        if !aws.exists() {
            println!(
                "| {count} | original script | (skipped: {} missing, run `make bench-venv`) | | | |",
                aws.display()
            );
            continue;
        }
        let before = emu.total_calls();
        let started = Instant::now();
        let output = std::process::Command::new("bash")
            .arg(workspace_root().join("tests/bench/original-prune.sh"))
            .envs(emu.env())
            .env("PATH", format!("{}:{}", aws.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default()))
            .env("PRUNE_NOW", "2026-11-26T02:00:00Z")
            .env("PRUNE_LIMIT", SCRIPT_SAMPLE.to_string())
            .output()
            .unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let selected: usize = stdout
            .lines()
            .find_map(|l| l.strip_prefix("selected "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("the script failed: {}", String::from_utf8_lossy(&output.stderr)));
        let calls = emu.total_calls() - before;
        let per_image = elapsed / SCRIPT_SAMPLE as f64;
        println!(
            "| {count} | original script | {elapsed:.1} s for {SCRIPT_SAMPLE} images; ≈{:.0} min for all {selected} selected (extrapolated) | {calls} for {SCRIPT_SAMPLE} (≈{} for all) | n/a (one aws process per call) | selects {selected} of {}: every image, untagged and newest included |",
            per_image * selected as f64 / 60.0,
            1 + 3 * selected,
            count + UNTAGGED,
        );
    }
}
