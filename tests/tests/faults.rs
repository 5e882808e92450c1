//! Faults, deterministic: throttling on a share of all calls, transient 5xx,
//! and a Lambda killed mid-flow. Each case checks the final state in the
//! emulator, which must be the same as without the faults.

use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, fixture, warning};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(180);

fn throttle(emu: &Emulator, seed: u64) {
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "*", "code": "RequestLimitExceeded", "rate": 0.3, "seed": seed}),
    );
}

async fn image_names(emu: &Emulator) -> Vec<String> {
    let out = emu.ec2().await.describe_images().owners("self").send().await.unwrap();
    let mut names: Vec<String> = out.images().iter().filter_map(|i| i.name().map(str::to_string)).collect();
    names.sort();
    names
}

#[tokio::test]
async fn scheduled_backup_under_throttling_and_5xx_backs_up_every_node() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    for node in ["etcd-a", "k8s-master", "k8s-worker"] {
        emu.launch(&subnet, &[("lifeboat:node", node)]).await;
    }
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "CreateImage", "code": "InternalError", "status": 500, "count": 2}),
    );
    throttle(&emu, 11);
    let run = invoke("scheduled-backup", &emu.env(), &[fixture("scheduled-backup.json")], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    let outcomes: Vec<&str> =
        report["nodes"].as_array().unwrap().iter().map(|n| n["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["created", "created", "created"], "{report}");
    emu.control("DELETE", "/lifeboat/faults", &Value::Null);
    assert_eq!(
        image_names(&emu).await,
        ["etcd-a-20261126-0100", "k8s-master-20261126-0100", "k8s-worker-20261126-0100"]
    );
    assert!(emu.calls("CreateImage") > 3, "faulted calls were retried");
}

#[tokio::test]
async fn the_relaunch_under_throttling_ends_like_without_it() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    emu.ec2().await.terminate_instances().instance_ids(&node.instance).send().await.unwrap();
    throttle(&emu, 5);
    let run = invoke("interruption-handler", &emu.env(), &[warning(&node.instance)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    emu.control("DELETE", "/lifeboat/faults", &Value::Null);
    let new = emu.replacements(&node.instance).await;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].private_ip_address(), Some(node.private_ip.as_str()));
    let root = new[0].root_device_name().unwrap();
    assert_eq!(emu.volume_at(new[0].instance_id().unwrap(), root).await, Some(node.root_volume.clone()));
    let commands = emu.ssm().await.list_commands().send().await.unwrap();
    assert_eq!(commands.commands().len(), 1);
}

#[tokio::test]
async fn a_handler_killed_mid_flow_is_finished_by_the_retry() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    let (old, ip) = (node.instance.clone(), node.private_ip.clone());
    emu.ec2().await.terminate_instances().instance_ids(&old).send().await.unwrap();
    // The replacement's agent takes a minute: the first invocation launches,
    // then is killed (as a Lambda timeout would) while it waits.
    emu.control("POST", "/lifeboat/config", &json!({"ssm_online_seconds": 60}));
    let run = invoke("interruption-handler", &emu.env(), &[warning(&old)], Duration::from_secs(6));
    assert!(run.invocations.is_empty(), "killed before answering");
    assert_eq!(emu.replacements(&old).await.len(), 1, "it had launched");
    assert_eq!(emu.calls("SendCommand"), 0);

    emu.control("POST", "/lifeboat/config", &json!({"ssm_online_seconds": 0}));
    let run = invoke("interruption-handler", &emu.env(), &[warning(&old)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "resumed", "{report}");
    let new = emu.replacements(&old).await;
    assert_eq!(new.len(), 1, "the retry launched nothing new");
    assert_eq!(new[0].private_ip_address(), Some(ip.as_str()));
    assert_eq!(emu.calls("SendCommand"), 1);
    assert_eq!(emu.calls("RunInstances"), 2, "the test's own launch and one relaunch");
    // A kill that lands during the root swap leaves the retry to ask again
    // with the same token: one task, however many requests.
    let tasks = emu.root_tasks(new[0].instance_id().unwrap()).await;
    assert_eq!(tasks.len(), 1, "one swap");
    assert_eq!(tasks[0].task_state().unwrap().as_str(), "succeeded");
}
