//! `make demo`: the emulator, a tagged spot node "k8s-master", and lifeboat's
//! real binaries run against it, told as a person reads it.

use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, fixture};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn answer(name: &str, emu: &Emulator, events: &[Value]) -> Vec<Value> {
    let run = invoke(name, &emu.env(), events, TIMEOUT);
    if run.invocations.len() != events.len() {
        eprintln!("{name} did not answer every event:\n{}", run.stderr);
        std::process::exit(1);
    }
    run.invocations.into_iter().map(|i| i.response()).collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn timeline(report: &Value) {
    println!("  timeline:");
    for step in report["timeline"].as_array().unwrap() {
        let at = step["at_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        println!("    {at:>7.1} s  {:<18} {}", text(&step["step"]), text(&step["detail"]));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
    let subnet = emu.subnet().await;
    let master = emu.launch(&subnet, &[("lifeboat:node", "k8s-master"), ("Name", "k8s-master")]).await;
    let web = emu.launch(&subnet, &[("Name", "web")]).await;
    println!("emulator {} (account {})", emu.url, emu.account);
    println!("seeded  {master}: spot, tagged lifeboat:node=k8s-master");
    println!("        {web}: no lifeboat tag");

    println!("\n== scheduled-backup: the 01:00 Scheduled Event, delivered twice");
    let event = fixture("scheduled-backup.json");
    for (i, report) in answer("scheduled-backup", &emu, &[event.clone(), event]).iter().enumerate() {
        for node in report["nodes"].as_array().unwrap() {
            println!(
                "  delivery {}: {} ({}) -> {} {} {}; interface {} {}",
                i + 1,
                text(&node["node"]),
                text(&node["instance"]),
                text(&node["outcome"]),
                text(&node["name"]),
                text(&node["image_id"]),
                text(&node["interface"]["interface_id"]),
                text(&node["interface"]["outcome"]),
            );
        }
    }
    // From here on images take as long as on AWS: the final backup stays pending.
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 600}));

    println!("\n== EC2 Spot Instance Interruption Warning for {master}; EC2 reclaims it 2 s later");
    let mut warning = fixture("spot-interruption-warning.json");
    warning["detail"]["instance-id"] = json!(master);
    let env = emu.env();
    let handler = tokio::task::spawn_blocking(move || {
        let run = invoke("interruption-handler", &env, &[warning], TIMEOUT);
        (run.invocations, run.stderr)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    emu.ec2().await.terminate_instances().instance_ids(&master).send().await.unwrap();
    let (invocations, stderr) = handler.await.unwrap();
    let Some(report) = invocations.into_iter().next() else {
        eprintln!("interruption-handler did not answer:\n{stderr}");
        std::process::exit(1);
    };
    let report = report.response();
    println!(
        "  {}: {} -> {} from {}, private IP {} -> {} (same: {}), {} {}",
        text(&report["outcome"]),
        text(&report["old_instance"]),
        text(&report["replacement"]),
        text(&report["image_id"]),
        text(&report["old_private_ip"]),
        text(&report["private_ip"]),
        report["same_ip"],
        text(&report["instance_type"]),
        text(&report["market"]),
    );
    println!("  final backup {} ({})", text(&report["backup"]["name"]), text(&report["backup"]["outcome"]));
    timeline(&report);

    println!("\n== restore drill: {{\"action\": \"test-restore\", \"node\": \"k8s-master\"}}");
    let drill = json!({"action": "test-restore", "node": "k8s-master", "keep": false});
    let report = answer("interruption-handler", &emu, &[drill]).remove(0);
    println!(
        "  {}: clone {} from {} on {} (node keeps {}), repaired in quarantine, checked, terminated",
        text(&report["outcome"]),
        text(&report["replacement"]),
        text(&report["image_id"]),
        text(&report["private_ip"]),
        text(&report["old_private_ip"]),
    );
    timeline(&report);
}
