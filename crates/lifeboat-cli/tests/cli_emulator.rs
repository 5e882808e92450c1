//! `lifeboat` against the emulator: the real binary, the real SDK, a node
//! prepared by the real scheduled-backup, and one that is not.

use crate::support::{
    DRY_RUN_OK, STACK, deploy, emulator, healthy_probe, lifeboat, outputs, prepared_node, prepared_node_with_key,
    public_path,
};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceType,
    MarketType, ResourceType, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification,
};
use lifeboat_tests::{BASE_AMI, Emulator};
use predicates::prelude::*;
use serde_json::{Value, json};

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_passes_on_a_node_prepared_by_scheduled_backup() {
    let emu = emulator();
    let node = prepared_node(&emu, "k8s-master").await;
    deploy(&emu, &outputs(&emu)).await;
    public_path(&emu, &node.instance).await;
    emu.command_results(&[&healthy_probe(&emu, &node.instance, "k8s-node").await, DRY_RUN_OK]);

    let before = emu.call_counts();
    let out = lifeboat(&emu).args(["preflight", "--node", "k8s-master"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("k8s-master is ready for a relaunch"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    // Read-only: reads, the probe and the repair's dry run on the node.
    let made: Vec<(String, u64)> = emu
        .call_counts()
        .into_iter()
        .map(|(op, n)| (op.clone(), n - before.get(&op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let reads = ["Describe", "Get", "List"];
    let writes: Vec<&(String, u64)> =
        made.iter().filter(|(op, _)| !reads.iter().any(|r| op.starts_with(r)) && op != "SendCommand").collect();
    assert!(writes.is_empty(), "preflight changed something: {writes:?}");
    assert!(made.contains(&("SendCommand".to_string(), 2)), "{made:?}");

    emu.command_results(&[&healthy_probe(&emu, &node.instance, "k8s-node").await, DRY_RUN_OK]);
    let out = lifeboat(&emu).args(["preflight", "--node", "k8s-master", "--json"]).output().unwrap();
    let report = json_of(&out);
    assert_eq!(report["passed"], true, "{report}");
    for id in [
        "credentials",
        "node-tag",
        "market",
        "instance-profile",
        "ssm-agent",
        "interface-kept",
        "network-path",
        "kubelet",
        "repair",
        "cloud-init",
        "cloud-init-enabled",
        "cloud-init-cache",
        "kubelet-after",
        "imdsv2",
        "nvme-serials",
        "ebs",
        "bare-metal",
        "kms",
        "spot-kms",
        "stack",
        "lambda-concurrency",
    ] {
        assert_eq!(check(&report, id)["status"], "pass", "{id}: {report}");
    }
    assert!(check(&report, "market")["detail"].as_str().unwrap().contains("one-time"), "{report}");
    assert!(check(&report, "network-path")["detail"].as_str().unwrap().contains("Elastic IP"), "{report}");
}

/// The operations a preflight run made since `before`, with their counts.
fn made_since(emu: &Emulator, before: &std::collections::BTreeMap<String, u64>) -> Vec<(String, u64)> {
    emu.call_counts()
        .into_iter()
        .map(|(op, n)| (op.clone(), n - before.get(&op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn spot_kms_fails_until_the_key_policy_lets_the_spot_role_use_the_customer_key() {
    let emu = emulator();
    let kms = aws_sdk_kms::Client::new(&emu.sdk_config().await);
    // A customer managed key with the policy KMS gives a key created without
    // one: its use left to IAM, where the spot role has none.
    let created = kms.create_key().description("k8s-master volumes").send().await.unwrap();
    let key = created.key_metadata().unwrap().arn().unwrap().to_string();
    let node = prepared_node_with_key(&emu, "k8s-master", &key).await;
    let mut outs = outputs(&emu);
    outs["EbsKmsKeyArns"] = json!(key);
    deploy(&emu, &outs).await;
    public_path(&emu, &node.instance).await;
    emu.command_results(&[&healthy_probe(&emu, &node.instance, "k8s-node").await, DRY_RUN_OK]);

    let out = lifeboat(&emu).args(["preflight", "--node", "k8s-master", "--json"]).output().unwrap();
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "pass")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["spot-kms"], "{report}");
    let c = check(&report, "spot-kms");
    assert_eq!(c["status"], "fail");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains(&key) && detail.contains("AWSServiceRoleForEC2Spot kms:Decrypt"), "{detail}");
    // The fix names the statement, in this account, ready to add.
    let role =
        format!("arn:aws:iam::{}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot", emu.account);
    let fix = c["fix"].as_str().unwrap();
    let start = fix.find("\n{").unwrap() + 1;
    let end = start + fix[start..].find("\n}").unwrap() + 2;
    let statement: Value = serde_json::from_str(&fix[start..end]).unwrap();
    assert_eq!(statement["Principal"]["AWS"], role.as_str(), "{fix}");
    assert_eq!(statement["Effect"], "Allow");
    assert!(fix.contains(&format!("--key-id {key} --grantee-principal {role}")), "{fix}");

    // The customer adds it to the key policy: preflight passes.
    let policy = kms.get_key_policy().key_id(&key).policy_name("default").send().await.unwrap();
    let mut policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    policy["Statement"].as_array_mut().unwrap().push(statement);
    kms.put_key_policy().key_id(&key).policy_name("default").policy(policy.to_string()).send().await.unwrap();
    emu.command_results(&[&healthy_probe(&emu, &node.instance, "k8s-node").await, DRY_RUN_OK]);
    let before = emu.call_counts();
    let out = lifeboat(&emu).args(["preflight", "--node", "k8s-master", "--json"]).output().unwrap();
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(check(&report, "spot-kms")["status"], "pass", "{report}");
    assert_eq!(check(&report, "kms")["status"], "pass", "{report}");
    // Still read-only: the key is described and read, nothing written.
    let made = made_since(&emu, &before);
    for op in ["DescribeKey", "GetKeyPolicy", "ListGrants"] {
        assert!(made.iter().any(|(o, _)| o == op), "{op} not made: {made:?}");
    }
    let writes: Vec<&(String, u64)> = made
        .iter()
        .filter(|(op, _)| !["Describe", "Get", "List"].iter().any(|r| op.starts_with(r)) && op != "SendCommand")
        .collect();
    assert!(writes.is_empty(), "preflight changed something: {writes:?}");
}

/// An instance that has everything wrong that EC2 can show: a persistent spot
/// request that stops, no instance profile, an interface deleted with it, an
/// encrypted data volume under a key the stack does not list, a subnet with
/// no way out.
async fn unprepared_node(emu: &Emulator, name: &str) -> String {
    let ec2 = emu.ec2().await;
    let subnet = emu.subnet().await;
    let data = BlockDeviceMapping::builder()
        .device_name("/dev/sdf")
        .ebs(
            EbsBlockDevice::builder()
                .volume_size(20)
                .delete_on_termination(true)
                .encrypted(true)
                .kms_key_id("arn:aws:kms:eu-west-1:1:key/other")
                .build(),
        )
        .build();
    let out = ec2
        .run_instances()
        .image_id(BASE_AMI)
        .instance_type(InstanceType::T3Medium)
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet)
        .block_device_mappings(data)
        .instance_market_options(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(
                    SpotMarketOptions::builder()
                        .spot_instance_type(SpotInstanceType::Persistent)
                        .instance_interruption_behavior(InstanceInterruptionBehavior::Stop)
                        .build(),
                )
                .build(),
        )
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key("lifeboat:node").value(name).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_names_each_failure_of_an_unprepared_node_and_its_fix() {
    let emu = emulator();
    let instance = unprepared_node(&emu, "bare").await;
    emu.control("POST", "/lifeboat/config", &json!({"offline_instances": [instance]}));
    emu.control("POST", "/lifeboat/lambda", &json!({"concurrency_limit": 10, "unreserved_concurrency": 2}));
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "DescribeAddresses", "code": "UnauthorizedOperation", "status": 403, "count": 1, "body_contains": "DryRun=true"}),
    );

    let out = lifeboat(&emu).args(["preflight", "--node", "bare", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    assert_eq!(report["passed"], false);
    let expect = |id: &str, status: &str, detail: &str, fix: &str| {
        let c = check(&report, id);
        assert_eq!(c["status"], status, "{id}: {c}");
        assert!(c["detail"].as_str().unwrap().contains(detail), "{id}: {c}");
        assert!(c["fix"].as_str().unwrap_or_default().contains(fix), "{id}: {c}");
    };
    expect("credentials", "fail", "DescribeAddresses", "allow ec2:DescribeAddresses");
    expect("node-tag", "pass", &instance, "");
    expect(
        "market",
        "fail",
        "persistent and its interruption behaviour is stop",
        "SpotInstanceType=one-time,InstanceInterruptionBehavior=terminate",
    );
    expect("instance-profile", "fail", "no instance profile", "AmazonSSMManagedInstanceCore");
    expect("ssm-agent", "fail", "not an Online managed node", "amazon-ssm-agent");
    expect("interface-kept", "fail", "DeleteOnTermination=true", "run lifeboat backup --node bare");
    expect("network-path", "fail", "no default route", "associate-address");
    expect("on-node", "warn", "not checked", "fix ssm-agent");
    expect("kms", "warn", "key/other", "EbsKmsKeyArns");
    expect("stack", "fail", "no stack lifeboat", "sam deploy");
    expect("lambda-concurrency", "fail", "2 unreserved of 10", "L-B99A9384");

    // The human form says the same, with the fixes under the table.
    let out = lifeboat(&emu).args(["preflight", "--node", "bare"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL    market"), "{text}");
    assert!(text.contains("fixes:\n"), "{text}");
    assert!(text.contains("bare is NOT ready for a relaunch"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_fails_each_missing_piece_on_the_node_itself() {
    let emu = emulator();
    let node = prepared_node(&emu, "k8s-bare").await;
    deploy(&emu, &outputs(&emu)).await;
    let nothing = "lifeboat-probe=1\nkubelet_unit=no\ncloud_init=no\nimdsv2=no\ninstance_store=nvme1n1:/var/lib/etcd\n";
    // The repair's preflight refuses (exit 11: the command fails), naming the tools.
    let refused = DRY_RUN_OK
        .replace(r#""result":"dry-run""#, r#""result":"failed""#)
        .replace(r#""relaunch":"ok","#, "")
        .replace("same IP: would pin the node name if needed, release the guard, start kubelet and verify /readyz, etcd and node k8s-master", "missing on the node: crictl kubectl");
    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({"command_results": [
            {"status": "Success", "stdout": nothing},
            {"status": "Failed", "response_code": 11, "stdout": refused},
        ]}),
    );

    let out = lifeboat(&emu).args(["preflight", "--node", "k8s-bare", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    for (id, fix) in [
        ("kubelet", "kubelet.service"),
        ("repair", "What a node needs"),
        ("cloud-init", "install cloud-init"),
        ("imdsv2", "modify-instance-metadata-options"),
        ("ebs", "unmount the instance store"),
        ("nvme-serials", "Nitro instance type"),
    ] {
        assert_eq!(check(&report, id)["status"], "fail", "{id}: {report}");
        assert!(check(&report, id)["fix"].as_str().unwrap().contains(fix), "{id}: {report}");
    }
    assert!(check(&report, "repair")["detail"].as_str().unwrap().contains("missing on the node: crictl kubectl"));
    // No role read from the node: the profile cannot be matched to NodeRoleArn.
    assert_eq!(check(&report, "instance-profile")["status"], "warn", "{report}");
    assert!(check(&report, "node-tag")["detail"].as_str().unwrap().contains(&node.instance));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_what_is_kept_the_backups_the_drill_and_the_alarms() {
    let emu = emulator();
    let node = prepared_node(&emu, "k8s-master").await;
    deploy(&emu, &outputs(&emu)).await;
    let ec2 = emu.ec2().await;
    ec2.create_tags()
        .resources(&node.image)
        .tags(Tag::builder().key("lifeboat:drill").value("passed 2026-11-29T03:00:00Z").build())
        .send()
        .await
        .unwrap();

    let out = lifeboat(&emu).args(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "stack lifeboat 0.1.0 (CREATE_COMPLETE), dashboard lifeboat",
        "k8s-master\n",
        &format!("{} (running)", node.instance),
        "type            t3.medium\n",
        "market          spot\n",
        &node.private_ip,
        "interface kept  yes",
        &format!("volumes kept    {0}/{0}", node.volumes),
        "backups         1",
        "last relaunch   never",
        &format!("last drill      passed 2026-11-29T03:00:00Z on {}", node.image),
        "lifeboat-RelaunchFailed-",
        "OK",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }

    let cloudwatch = aws_sdk_cloudwatch::Client::new(&emu.sdk_config().await);
    let alarms = cloudwatch.describe_alarms().send().await.unwrap();
    let relaunch =
        alarms.metric_alarms().iter().find_map(|a| a.alarm_name().filter(|n| n.contains("RelaunchFailed"))).unwrap();
    cloudwatch
        .set_alarm_state()
        .alarm_name(relaunch)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("a relaunch failed")
        .send()
        .await
        .unwrap();
    let out = lifeboat(&emu).args(["status", "--node", "k8s-master", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "an alarm in ALARM fails status");
    let report = json_of(&out);
    let row = &report["nodes"][0];
    assert_eq!(row["node"], "k8s-master");
    assert_eq!(row["instance"], node.instance.as_str());
    assert_eq!(row["market"], "spot");
    assert_eq!(row["interface_kept"], true);
    assert_eq!(row["volumes_kept"], json!({"kept": node.volumes, "total": node.volumes}));
    assert_eq!(row["backups"], 1);
    assert_eq!(row["newest_backup"]["image_id"], node.image.as_str());
    assert_eq!(row["last_relaunch"], Value::Null);
    assert_eq!(row["last_drill"]["outcome"], "passed");
    let states: Vec<&str> = report["alarms"].as_array().unwrap().iter().map(|a| a["state"].as_str().unwrap()).collect();
    assert_eq!(states.iter().filter(|s| **s == "ALARM").count(), 1, "{report}");
    assert_eq!(report["stack"]["name"], STACK);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_fails_while_the_boot_guard_holds_kubelet_and_passes_once_it_released_itself() {
    let emu = emulator();
    let node = prepared_node(&emu, "k8s-master").await;
    deploy(&emu, &outputs(&emu)).await;
    let console = |text: &str| {
        emu.control("POST", &format!("/lifeboat/console/{}", node.instance), &json!({"output": text}));
    };
    console(
        "[    8.1] cloud-init[612]: Cloud-init v. 24.1 running 'init'\r\n\
         [    9.2] sh[701]: lifeboat-guard: held: data volume vol-0abc (/dev/sdf) is not attached\r\n\
         Ubuntu 24.04 LTS ip-10-0-1-4 ttyS0\r\n",
    );

    let out = lifeboat(&emu).args(["status", "--node", "k8s-master", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a held guard fails status");
    let report = json_of(&out);
    assert_eq!(report["passed"], false);
    assert_eq!(
        report["nodes"][0]["boot_guard"],
        json!({"guard": "held", "reason": "data volume vol-0abc (/dev/sdf) is not attached"}),
        "{report}"
    );
    let out = lifeboat(&emu).args(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("boot guard      HELD: data volume vol-0abc (/dev/sdf) is not attached"), "{text}");
    assert!(text.contains("sudo sh /run/lifeboat/guard release"), "{text}");

    console(
        "[    9.2] sh[701]: lifeboat-guard: self-released: booted from vol-0123 on 10.0.1.4, etcd's data in place\n",
    );
    let out = lifeboat(&emu).args(["status", "--node", "k8s-master", "--json"]).output().unwrap();
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["nodes"][0]["boot_guard"]["guard"], "self-released", "{report}");
    let out = lifeboat(&emu).args(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("boot guard      self-released: booted from vol-0123"), "{text}");
    assert!(!text.contains("guard release"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_says_since_when_and_why_a_node_runs_on_demand() {
    let emu = emulator();
    let subnet = emu.subnet().await;
    let ec2 = emu.ec2().await;
    // On-demand nodes, as a relaunch's fallback leaves one and as one launched so.
    let launch = |name: &'static str, fallback: bool| {
        let ec2 = ec2.clone();
        let subnet = subnet.clone();
        async move {
            let mut tags = TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key("lifeboat:node").value(name).build());
            if fallback {
                tags = tags
                    .tags(Tag::builder().key("lifeboat:market-fallback").value("2026-11-29T02:00:00Z").build())
                    .tags(
                        Tag::builder()
                            .key("lifeboat:market-fallback-reason")
                            .value("t3.medium InsufficientInstanceCapacity")
                            .build(),
                    );
            }
            let out = ec2
                .run_instances()
                .image_id(BASE_AMI)
                .instance_type(InstanceType::T3Medium)
                .min_count(1)
                .max_count(1)
                .subnet_id(subnet)
                .tag_specifications(tags.build())
                .send()
                .await
                .unwrap();
            out.instances()[0].instance_id().unwrap().to_string()
        }
    };
    launch("fell-back", true).await;
    launch("chosen", false).await;

    let out = lifeboat(&emu).args(["status", "--json"]).output().unwrap();
    let report = json_of(&out);
    let row = |name: &str| report["nodes"].as_array().unwrap().iter().find(|r| r["node"] == name).unwrap().clone();
    let fell_back = row("fell-back");
    assert_eq!(fell_back["market"], "on-demand", "{report}");
    assert_eq!(fell_back["market_fallback"]["since"], "2026-11-29T02:00:00Z", "{report}");
    assert_eq!(fell_back["market_fallback"]["reason"], "t3.medium InsufficientInstanceCapacity");
    assert!(fell_back["market_fallback"]["age_seconds"].as_i64().unwrap() > 0);
    assert_eq!(row("chosen")["market"], "on-demand");
    assert_eq!(row("chosen")["market_fallback"], Value::Null);

    let out = lifeboat(&emu).args(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("market          on-demand since 2026-11-29T02:00:00Z ("), "{text}");
    assert!(text.contains("): spot refused: t3.medium InsufficientInstanceCapacity\n"), "{text}");
    assert!(text.contains("market          on-demand as launched (no spot fallback recorded)\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_of_an_unprepared_node_says_what_is_not_kept() {
    let emu = emulator();
    let instance = unprepared_node(&emu, "bare").await;
    let out = lifeboat(&emu).args(["status", "--json"]).output().unwrap();
    let report = json_of(&out);
    let row = &report["nodes"][0];
    assert_eq!(row["instance"], instance.as_str());
    assert_eq!(row["interface_kept"], false);
    assert_eq!(row["volumes_kept"]["kept"], 0, "{report}");
    assert_eq!(row["backups"], 0);
    assert_eq!(row["newest_backup"], Value::Null);
    assert!(report["alarms_error"].as_str().unwrap().contains("no stack lifeboat"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_invokes_the_deployed_function_and_prints_its_outcome() {
    let emu = emulator();
    let node = prepared_node(&emu, "k8s-master").await;
    deploy(&emu, &outputs(&emu)).await;

    let out = lifeboat(&emu).args(["backup", "--node", "k8s-master", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out);
    assert_eq!(report["function"], "lifeboat-scheduled-backup");
    assert!(matches!(report["outcome"].as_str(), Some("created" | "already-existed")), "{report}");
    assert_eq!(report["report"]["nodes"][0]["instance"], node.instance.as_str());
    assert_eq!(report["report"]["nodes"][0]["interface"]["outcome"], "already-kept", "{report}");

    let out = lifeboat(&emu).args(["backup", "--node", "k8s-master"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("backup of k8s-master (lifeboat-scheduled-backup)"), "{text}");
    assert!(text.contains(&format!("passed: k8s-master ({}):", node.instance)), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_error_fails_with_its_whole_message() {
    let emu = emulator();
    deploy(&emu, &outputs(&emu)).await;
    lifeboat(&emu).args(["backup", "--node", "nowhere"]).assert().code(1).stdout(predicate::str::contains(
        "FAILED: the backup of nowhere FAILED: no instance carries the tag lifeboat:node=nowhere",
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_that_need_the_stack_say_how_to_deploy_it() {
    let emu = emulator();
    for command in ["backup", "drill", "restore"] {
        lifeboat(&emu)
            .args([command, "--node", "k8s-master"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("no stack lifeboat in this region: deploy lifeboat first"));
    }
    lifeboat(&emu)
        .args(["interrupt", "--node", "k8s-master", "--yes"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no stack lifeboat"));
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupt_refuses_without_the_stacks_experiment() {
    let emu = emulator();
    let mut outs = outputs(&emu);
    outs.as_object_mut().unwrap().remove("InterruptionExperimentTemplateId");
    deploy(&emu, &outs).await;
    lifeboat(&emu)
        .args(["interrupt", "--node", "k8s-master", "--yes"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no output InterruptionExperimentTemplateId"));
}
