//! Restore drills end to end: the real binary, the real SDK, the emulator.

use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, tag_pairs};
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn a_drill_is_fenced_swaps_its_root_like_a_relaunch_and_leaves_nothing_behind() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    let node_before = emu.instance(&node.instance).await;
    emu.command_results(&[
        &emu.drill_repaired(),
        r#"{"result":"ok","step":"health","readyz":true,"etcd":true,"node_ready":true}"#,
    ]);
    let drill = json!({"action": "test-restore", "node": "k8s-master", "keep": false});
    let run = invoke("interruption-handler", &emu.function_env("interruption-handler"), &[drill], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "drill-passed", "{report}");

    let clones = emu.instances_tagged("lifeboat:drill-of", "k8s-master").await;
    assert_eq!(clones.len(), 1);
    let clone = &clones[0];
    let clone_id = clone.instance_id().unwrap();
    assert_eq!(clone.state().unwrap().name().unwrap().as_str(), "terminated");
    assert_eq!(clone.image_id(), Some(node.image.as_str()));
    assert!(!tag_pairs(clone.tags()).iter().any(|(k, _)| k == "lifeboat:node"));
    assert_ne!(report["replacement"]["private_ip"], node.private_ip.as_str(), "an address of its own");
    // Guarded and fenced from the first instruction: off the live node and
    // the rest of its VPC (DescribeSubnets, DescribeVpcs), the VPC's
    // resolver and the region's SSM endpoints let through.
    let user_data = emu.user_data(clone_id).await;
    assert!(user_data.contains("ConditionPathExists=/run/lifeboat/released"));
    assert!(user_data.contains(&format!("FENCE='{}'", node.private_ip)), "{user_data}");
    assert!(user_data.contains("VPC='10.0.0.0/16'") && user_data.contains("RESOLVER='10.0.0.2'"), "{user_data}");
    assert!(user_data.contains("SSM_HOSTS='ssm.eu-west-1.amazonaws.com "), "{user_data}");
    // Its root was replaced with a volume made from the image's root snapshot.
    let tasks = emu.root_tasks(clone_id).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].task_state().unwrap().as_str(), "succeeded");
    let image = emu.ec2().await.describe_images().image_ids(&node.image).send().await.unwrap();
    let root_snapshot = image.images()[0]
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == image.images()[0].root_device_name())
        .and_then(|m| m.ebs()?.snapshot_id())
        .unwrap()
        .to_string();
    let swapped = report["timeline"].as_array().unwrap().iter().find(|s| s["step"] == "root-swapped").unwrap();
    assert!(swapped["detail"].as_str().unwrap().contains(&root_snapshot), "{swapped}");
    // The image records the drill, under the handler's own policy.
    let recorded = tag_pairs(image.images()[0].tags());
    assert!(recorded.iter().any(|(k, v)| k == "lifeboat:drill" && v.starts_with("passed ")), "{recorded:?}");
    // Nothing made for the drill is left, and the real node is untouched.
    let volume = report["state"]["volumes"][0].as_str().unwrap();
    assert!(emu.volume(volume).await.is_none_or(|v| v.state().unwrap().as_str() == "deleted"), "{volume}");
    let leftover = emu
        .ec2()
        .await
        .describe_volumes()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag-key").values("lifeboat:drill-of").build())
        .send()
        .await
        .unwrap();
    assert!(leftover.volumes().is_empty(), "{:?}", leftover.volumes());
    let node_after = emu.instance(&node.instance).await;
    assert_eq!(node_after.state(), node_before.state());
    assert_eq!(node_after.private_ip_address(), node_before.private_ip_address());
    assert_eq!(tag_pairs(node_after.tags()), tag_pairs(node_before.tags()));
    assert_eq!(node_after.block_device_mappings(), node_before.block_device_mappings());
    // The repair went to the clone in quarantine, then the health check.
    let commands = emu.ssm().await.list_commands().send().await.unwrap();
    let mut sent: Vec<(Vec<String>, String, String)> = commands
        .commands()
        .iter()
        .map(|c| {
            let args = c.parameters().unwrap()["args"][0].clone();
            (c.instance_ids().to_vec(), c.document_name().unwrap().to_string(), args)
        })
        .collect();
    sent.sort_by_key(|(_, _, args)| !args.contains("--quarantine"));
    let clone = vec![clone_id.to_string()];
    assert_eq!(
        sent,
        [
            (clone.clone(), "lifeboat-repair".to_string(), "--quarantine --timeout 480".to_string()),
            (clone, "lifeboat-health".to_string(), "k8s-master --timeout 120".to_string()),
        ]
    );
    assert_eq!(emu.calls("TerminateInstances"), 1);
}

#[tokio::test]
async fn a_kept_clone_runs_on_a_volume_made_from_the_images_root_snapshot() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    emu.command_results(&[
        &emu.drill_repaired(),
        r#"{"result":"ok","step":"health","readyz":true,"etcd":true,"node_ready":true}"#,
    ]);
    let mut env = emu.function_env("interruption-handler");
    env.push(("LIFEBOAT_DRILL_ALLOW_KEEP".into(), "true".into()));
    let drill = json!({"action": "test-restore", "node": "k8s-master", "keep": true});
    let run = invoke("interruption-handler", &env, &[drill], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "drill-passed", "{report}");
    let clones = emu.instances_tagged("lifeboat:drill-of", "k8s-master").await;
    assert_eq!(clones.len(), 1);
    let clone = &clones[0];
    assert_eq!(clone.state().unwrap().name().unwrap().as_str(), "running", "kept on purpose");
    // Its own identity, never the node's, out of reach of its pods; its own network.
    let node_profile = emu.instance(&node.instance).await.iam_instance_profile().unwrap().arn().unwrap().to_string();
    let profile = clone.iam_instance_profile().and_then(|p| p.arn()).unwrap();
    assert_eq!(profile, emu.drill_instance_profile());
    assert_ne!(profile, node_profile);
    let metadata = clone.metadata_options().unwrap();
    assert_eq!(metadata.http_put_response_hop_limit(), Some(1));
    assert_eq!(metadata.http_tokens().unwrap().as_str(), "required");
    let groups: Vec<&str> = clone.security_groups().iter().filter_map(|g| g.group_id()).collect();
    assert_eq!(groups, [emu.drill_security_group().as_str()]);
    assert!(tag_pairs(clone.tags()).contains(&("lifeboat:drill-kept".into(), "true".into())));
    let ec2 = emu.ec2().await;
    let image = ec2.describe_images().image_ids(&node.image).send().await.unwrap();
    let image = &image.images()[0];
    let root_device = image.root_device_name().unwrap();
    let snapshot_of = |mappings: &[aws_sdk_ec2::types::BlockDeviceMapping]| {
        mappings
            .iter()
            .find(|m| m.device_name() == Some(root_device))
            .and_then(|m| m.ebs()?.snapshot_id())
            .map(str::to_string)
    };
    let root_snapshot = snapshot_of(image.block_device_mappings()).unwrap();
    // The clone's root now is the volume the drill made from that snapshot.
    let root = emu.volume_at(clone.instance_id().unwrap(), root_device).await.unwrap();
    assert_eq!(report["state"]["volumes"], json!([root]), "{report}");
    let root = emu.volume(&root).await.unwrap();
    assert_eq!(root.snapshot_id(), Some(root_snapshot.as_str()));
    assert!(tag_pairs(root.tags()).contains(&("lifeboat:drill-of".into(), "k8s-master".into())));
}

#[tokio::test]
async fn a_drill_without_its_own_profile_or_group_refuses_and_launches_nothing() {
    let emu = Emulator::new();
    emu.backed_up_node().await;
    let launched_before = emu.calls("RunInstances");
    for missing in ["LIFEBOAT_DRILL_INSTANCE_PROFILE", "LIFEBOAT_DRILL_SECURITY_GROUP"] {
        let env: Vec<(String, String)> =
            emu.function_env("interruption-handler").into_iter().filter(|(k, _)| k != missing).collect();
        let drill = json!({"action": "test-restore", "node": "k8s-master", "keep": false});
        let run = invoke("interruption-handler", &env, &[drill], TIMEOUT);
        let invocation = run.invocations.into_iter().next().expect(&run.stderr);
        let text = format!("{invocation:?}");
        assert!(text.contains("refuses") && text.contains(missing), "{text}");
    }
    assert!(emu.instances_tagged("lifeboat:drill-of", "k8s-master").await.is_empty());
    assert_eq!(emu.calls("RunInstances"), launched_before, "no launch");
}
