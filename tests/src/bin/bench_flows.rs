//! `make bench-flows`: scheduled-backup at 1, 20 and 200 nodes beside the
//! original cron script's backup step (its `aws ec2 create-image` per node,
//! with the aws CLI), and relaunches on the old disks: per wait, how long after
//! AWS reached the state lifeboat noticed it, and the API calls per relaunch;
//! then the recovery end to end, from the interruption warning to a serving
//! control plane, with AWS's delays modelled from published figures (see
//! [`recovery`]). Runs the debug binaries against the emulator; prints
//! Markdown tables. A benchmark, not a test: it asserts nothing about time.

use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, fixture, warning, workspace_root};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(600);

async fn backups() {
    let aws = workspace_root().join(".venv-bench/bin/aws");
    println!("| nodes | tool | wall time | API calls | peak memory |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    for nodes in [1usize, 20, 200] {
        let emu = Emulator::new();
        let subnet = emu.subnet().await;
        for i in 0..nodes {
            emu.launch(&subnet, &[("lifeboat:node", &format!("node-{i:03}"))]).await;
        }
        let before = emu.total_calls();
        let started = Instant::now();
        let run = invoke(
            "scheduled-backup",
            &emu.function_env("scheduled-backup"),
            &[fixture("scheduled-backup.json")],
            TIMEOUT,
        );
        let elapsed = started.elapsed();
        let report = run.invocations.into_iter().next().unwrap_or_else(|| panic!("{}", run.stderr)).response();
        assert_eq!(report["nodes"].as_array().unwrap().len(), nodes);
        let made = emu.total_calls() - before;
        println!(
            "| {nodes} | scheduled-backup | {:.2} s | {made} | {:.1} MiB |",
            elapsed.as_secs_f64(),
            run.peak_rss_kib.unwrap_or(0) as f64 / 1024.0
        );
        if !aws.exists() {
            continue;
        }
        // The script's step, once per node as a person would extend it.
        let emu = Emulator::new();
        let subnet = emu.subnet().await;
        for i in 0..nodes {
            emu.launch(&subnet, &[("lifeboat:node", &format!("node-{i:03}"))]).await;
        }
        let script = r#"for id in $(aws ec2 describe-instances --filters Name=tag-key,Values=lifeboat:node --query 'Reservations[].Instances[].InstanceId' --output text); do
  aws ec2 create-image --instance-id "$id" --name "k8s-$id-$(date +%Y%m%d)" --no-reboot >/dev/null
done"#;
        let before = emu.total_calls();
        let started = Instant::now();
        let output = std::process::Command::new("bash")
            .args(["-c", script])
            .envs(emu.env())
            .env("PATH", format!("{}:{}", aws.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default()))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let elapsed = started.elapsed();
        let made = emu.total_calls() - before;
        println!(
            "| {nodes} | original script | {:.2} s | {made} | n/a (one aws process per call) |",
            elapsed.as_secs_f64()
        );
    }
}

/// The emulator's account-wide event log: (resource, event) -> when.
fn events(emu: &Emulator) -> Vec<(String, String, f64)> {
    let log = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    log.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["resource"].as_str().unwrap().into(), e["event"].as_str().unwrap().into(), e["at"].as_f64().unwrap())
        })
        .collect()
}

fn last(events: &[(String, String, f64)], resource: &str, event: &str) -> Option<f64> {
    events.iter().rev().find(|(r, e, _)| r == resource && e == event).map(|(_, _, at)| *at)
}

/// One relaunch on the old disks with AWS's delays shortened (EC2 reclaims
/// the node 5 s after the warning): per wait, how long after AWS reached the
/// state lifeboat noticed it, and the calls it made.
async fn relaunch_once(lags: &mut BTreeMap<&'static str, Vec<f64>>, per_operation: &mut BTreeMap<String, u64>) {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({"ssm_online_seconds": 3, "root_task_seconds": 4, "reboot_seconds": 2, "ssm_command_seconds": 2}),
    );
    emu.command_results(&[r#"{"result":"ok","step":"verify","guard":"released"}"#]);
    let before = emu.call_counts();
    emu.interrupt(&node.instance, "terminate", 5.0);
    let run =
        invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(&node.instance)], TIMEOUT);
    let started = run.handed_out[0].duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let report = run.invocations.into_iter().next().unwrap_or_else(|| panic!("{}", run.stderr)).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    assert_eq!(report["state"]["source"], "old-volumes", "{report}");
    let log = events(&emu);
    let step = |name: &str| {
        report["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["step"] == name)
            .and_then(|s| s["at_ms"].as_f64())
    };
    let replacement = report["replacement"]["id"].as_str().unwrap().to_string();
    let task =
        log.iter().find(|(r, e, _)| r.starts_with("replacevol-") && e == "task-succeeded").map(|(r, ..)| r.clone());
    let command = report["command"]["command_id"].as_str().unwrap_or_default().to_string();
    let released = [&node.root_volume, &node.data_volume]
        .iter()
        .filter_map(|v| last(&log, v, "volume-available"))
        .fold(0.0, f64::max);
    let waits: [(&'static str, &str, Option<f64>); 6] = [
        ("the old instance terminated", "old-terminated", last(&log, &node.instance, "terminated")),
        ("its volumes released", "old-volumes", Some(released).filter(|r| *r > 0.0)),
        ("the replacement running", "running", last(&log, &replacement, "running")),
        ("the root volume swapped", "root-swapped", task.as_deref().and_then(|t| last(&log, t, "task-succeeded"))),
        ("the SSM agent online after the swap", "ssm-online", last(&log, &replacement, "online")),
        ("the repair finished", "repaired", last(&log, &command, "command-finished")),
    ];
    for (wait, name, reached) in waits {
        if let (Some(noticed), Some(reached)) = (step(name), reached) {
            lags.entry(wait).or_default().push(started + noticed / 1000.0 - reached);
        }
    }
    for (op, n) in emu.call_counts() {
        let delta = n - before.get(&op).copied().unwrap_or(0);
        if !op.is_empty() && delta > 0 {
            *per_operation.entry(op).or_default() += delta;
        }
    }
}

async fn relaunches() {
    const RUNS: usize = 5;
    let mut lags: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut per_operation: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..RUNS {
        relaunch_once(&mut lags, &mut per_operation).await;
    }
    println!(
        "\n| wait ({RUNS} relaunches on the old disks) | lifeboat noticed it after AWS reached it: median | max |"
    );
    println!("| --- | ---: | ---: |");
    for (wait, mut seconds) in lags {
        seconds.sort_by(f64::total_cmp);
        println!("| {wait} | {:.1} s | {:.1} s |", seconds[seconds.len() / 2], seconds[seconds.len() - 1]);
    }
    println!("\n| operation | calls per relaunch |");
    println!("| --- | ---: |");
    for (op, n) in &per_operation {
        println!("| {op} | {:.1} |", *n as f64 / RUNS as f64);
    }
}

// Recovery, end to end: AWS's own delays, modelled from published figures.
// Seconds on AWS; the emulator runs each divided by TIME_SCALE. Each
// says where its figure comes from; an estimate says so.

/// The emulator runs AWS's delays this many times faster, so that a
/// recovery takes seconds, not minutes. lifeboat's own polling (1 s growing
/// to 3 s) does not scale: what it adds is measured, never multiplied.
const TIME_SCALE: f64 = 20.0;
/// The interruption warning to the old instance terminated. EC2 user guide,
/// "Spot Instance interruption notices" (spot-instance-termination-notices.html):
/// the notice "is issued two minutes before Amazon EC2 stops or terminates
/// your Spot Instance".
const WARNING_TO_TERMINATED: f64 = 120.0;
/// The kept interface detached after the termination. Estimate: no AWS page
/// gives a time (tests/emulator/patches/network.py, whose default this is).
const INTERFACE_DETACHED: f64 = 3.0;
/// RunInstances to `running`. brevdev/ec2-coldboot-research (@fix_plan.md):
/// "Pending→Running is 16.4-16.6s regardless of instance family" (t3.medium
/// to r7i.large); C. Percival, "EC2 boot time benchmarking" (daemonology.net,
/// 2021-08-12): 4.9 s on a c5.xlarge. The larger, recent figure.
const PENDING_TO_RUNNING: f64 = 16.5;
/// A root-volume replacement task, created to succeeded, its reboot
/// included. Estimate: AWS publishes no duration (EC2 user guide,
/// replace-root.html, says only that the instance is rebooted; the AWS
/// Compute Blog's "Quick Restoration through Replacing the Root Volumes"
/// says "within minutes or even seconds").
const ROOT_SWAP: f64 = 60.0;
/// The boot after the swap's reboot: `running` to sshd answering.
/// C. Percival, "EC2 boot time benchmarking": running to port 22 closed
/// 17.2 s, then closed to open 5.6 s.
const BOOT: f64 = 22.8;
/// The SSM agent registered (Online) after a start, its boot included.
/// Typical: DataDog/stratus-red-team#108, "it can take randomly from 30s
/// to several minutes"; CIROH-UA/ngen-datastream#111: the agent needed
/// "another ~30 seconds" after the instance was up.
const SSM_TYPICAL: f64 = 30.0;
/// Slow: the log in DataDog/stratus-red-team#108, instance ready 09:13:48,
/// ready in SSM 09:19:55 (367 s); CIROH-UA/ngen-datastream#361 "occasionally
/// exceeds 120s" (the wait raised to 300 s), basti-app/basti#49 "more than
/// ... 5 minutes" in some cases.
const SSM_SLOW: f64 = 367.0;
/// The repair's own checks before it releases kubelet on the same IP
/// (detect, preflight, quarantine, node-name) and SSM's delivery. Estimate:
/// no published figure.
const REPAIR_CHECKS: f64 = 5.0;
/// kubelet started to the static pods serving (apiserver /readyz). The
/// logs in kubernetes/kubernetes#117984: kubeadm init's "All control plane
/// components are healthy after" 24.0 to 28.0 seconds; the upper figure.
const KUBELET_STATIC_PODS: f64 = 28.0;

/// How the control plane comes back: the guard releases kubelet at boot, or
/// the SSM repair does once the agent registers.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    SelfRelease,
    Ssm { registration: f64 },
}

/// What lifeboat added beyond AWS on one recovery, measured on the emulator:
/// the handler's moments (its timeline, or the emulator's record of the
/// call) against the moments AWS reached each state (the event log).
#[derive(Default)]
struct Added {
    /// The old disks and interface free to RunInstances.
    launch: Vec<f64>,
    /// The replacement running to the root-volume task created.
    swap: Vec<f64>,
    /// The agent Online after the swap to the repair command sent.
    command: Vec<f64>,
    /// The repair finished to lifeboat noticing it (after serving).
    noticed: Vec<f64>,
}

async fn recovery_once(path: Path, added: &mut Added) {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    let scaled = |seconds: f64| seconds / TIME_SCALE;
    let registration = match path {
        Path::SelfRelease => SSM_TYPICAL,
        Path::Ssm { registration } => registration,
    };
    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({
            "shutdown_seconds": scaled(20.0),
            "eni_release_seconds": scaled(INTERFACE_DETACHED),
            "root_task_seconds": scaled(ROOT_SWAP),
            // the agent after the swap's reboot (the emulator: reboot_seconds
            // after the task), and after the launch
            "reboot_seconds": scaled(registration),
            "ssm_online_seconds": scaled(registration),
            "ssm_command_seconds": scaled(REPAIR_CHECKS + KUBELET_STATIC_PODS),
        }),
    );
    let guard = if path == Path::SelfRelease { "self-released" } else { "released" };
    emu.command_results(&[&format!(r#"{{"result":"ok","step":"verify","guard":"{guard}"}}"#)]);
    // terminated WARNING_TO_TERMINATED after the warning, shutting-down included
    emu.interrupt(&node.instance, "terminate", scaled(WARNING_TO_TERMINATED - 20.0));
    let run =
        invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(&node.instance)], TIMEOUT);
    let started = run.handed_out[0].duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let report = run.invocations.into_iter().next().unwrap_or_else(|| panic!("{}", run.stderr)).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    assert_eq!(report["state"]["source"], "old-volumes", "{report}");
    assert_eq!(report["guard"], guard, "{report}");
    let log = events(&emu);
    let step = |name: &str| {
        let at = report["timeline"].as_array().unwrap().iter().rev().find(|s| s["step"] == name)?["at_ms"].as_f64()?;
        Some(started + at / 1000.0)
    };
    let replacement = report["replacement"]["id"].as_str().unwrap().to_string();
    let command = report["command"]["command_id"].as_str().unwrap_or_default().to_string();
    // AWS freed the disks and the interface: the last of them.
    let free = log
        .iter()
        .filter(|(r, e, _)| {
            (r == &node.instance && e == "terminated")
                || ((r == &node.root_volume || r == &node.data_volume) && e == "volume-available")
                || (r.starts_with("eni-") && e == "interface-available")
        })
        .map(|(.., at)| *at)
        .fold(0.0, f64::max);
    // The emulator records `running` when RunInstances is answered.
    let launched = last(&log, &replacement, "running").expect("the replacement ran");
    let task_created =
        log.iter().find(|(r, e, _)| r.starts_with("replacevol-") && e == "task-pending").map(|(.., at)| *at);
    added.launch.push(launched - free);
    // No pending time on the emulator: this is lifeboat's poll and its calls.
    added.swap.push(task_created.expect("a root swap") - launched);
    if matches!(path, Path::Ssm { .. }) {
        let online = last(&log, &replacement, "online").expect("the agent online");
        added.command.push(step("command-sent").expect("the repair sent") - online);
        if let (Some(noticed), Some(finished)) = (step("repaired"), last(&log, &command, "command-finished")) {
            added.noticed.push(noticed - finished);
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// From the interruption warning to a serving control plane, per step: AWS's
/// time, modelled (the constants above), and what lifeboat adds beyond each
/// step, measured on the emulator running AWS's delays TIME_SCALE times
/// faster. The total is the modelled steps plus the measured additions.
async fn recovery() {
    const RUNS: usize = 3;
    let paths = [
        ("self-release", Path::SelfRelease),
        ("SSM, typical agent", Path::Ssm { registration: SSM_TYPICAL }),
        ("SSM, slow agent", Path::Ssm { registration: SSM_SLOW }),
    ];
    let mut measured = Vec::new();
    for (_, path) in paths {
        let mut added = Added::default();
        for _ in 0..RUNS {
            recovery_once(path, &mut added).await;
        }
        measured.push(added);
    }
    // (step, modelled?, seconds per path; None: not on that path)
    type Row = (&'static str, bool, [Option<f64>; 3]);
    let aws = |name, seconds: [Option<f64>; 3]| -> Row { (name, true, seconds) };
    let all = |s: f64| [Some(s); 3];
    let ssm_only = |a: f64, b: f64| [None, Some(a), Some(b)];
    let lifeboat = |name, pick: fn(&Added) -> &Vec<f64>| -> Row {
        let value = |i: usize| {
            let v = pick(&measured[i]);
            (!v.is_empty()).then(|| median(v))
        };
        (name, false, [value(0), value(1), value(2)])
    };
    let rows: Vec<Row> = vec![
        aws("warning → old instance terminated (EC2's two minutes)", all(WARNING_TO_TERMINATED)),
        aws("kept interface detached (estimate)", all(INTERFACE_DETACHED)),
        lifeboat("disks and interface free → RunInstances", |a| &a.launch),
        aws("pending → running", all(PENDING_TO_RUNNING)),
        lifeboat("running → root-volume task created", |a| &a.swap),
        aws("root volume swapped, its reboot included (estimate)", all(ROOT_SWAP)),
        aws("boot from the old root; the guard releases kubelet", [Some(BOOT), None, None]),
        aws("SSM agent registered after the reboot (boot included)", ssm_only(SSM_TYPICAL, SSM_SLOW)),
        lifeboat("agent Online → repair command sent", |a| &a.command),
        aws("repair's checks, then it releases kubelet (estimate)", ssm_only(REPAIR_CHECKS, REPAIR_CHECKS)),
        aws("kubelet → static pods serving (apiserver ready)", all(KUBELET_STATIC_PODS)),
    ];
    println!(
        "\n| recovery, warning → serving control plane ({RUNS} runs per path, AWS ÷ {TIME_SCALE}) | who | self-release | SSM, typical agent | SSM, slow agent |"
    );
    println!("| --- | --- | ---: | ---: | ---: |");
    let cell = |v: Option<f64>| v.map_or("–".to_string(), |s| format!("{s:.1} s"));
    let mut totals = [0.0f64; 3];
    let mut added = [0.0f64; 3];
    for (name, modelled, seconds) in &rows {
        let who = if *modelled { "AWS, modelled" } else { "lifeboat, measured (median)" };
        println!("| {name} | {who} | {} | {} | {} |", cell(seconds[0]), cell(seconds[1]), cell(seconds[2]));
        for (i, s) in seconds.iter().enumerate() {
            totals[i] += s.unwrap_or(0.0);
            if !modelled {
                added[i] += s.unwrap_or(0.0);
            }
        }
    }
    let minutes = |s: f64| format!("{s:.1} s ({}m {:02.0}s)", (s / 60.0).floor(), s % 60.0);
    println!(
        "| **total: warning → serving** | modelled + measured | **{}** | **{}** | **{}** |",
        minutes(totals[0]),
        minutes(totals[1]),
        minutes(totals[2])
    );
    println!("| of which lifeboat adds | measured | {:.1} s | {:.1} s | {:.1} s |", added[0], added[1], added[2]);
    let after = |i: usize| {
        let v = &measured[i].noticed;
        (!v.is_empty()).then(|| median(v))
    };
    println!(
        "| (after serving, not in the total) repair finished → the handler noticed | lifeboat, measured | {} | {} | {} |",
        cell(after(0)),
        cell(after(1)),
        cell(after(2))
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    backups().await;
    relaunches().await;
    recovery().await;
}
