use super::*;
use lifeboat_core::model::{AttachedVolume, Attachment, Tags};
use serde_json::json;

mod keys;
mod on_node;

const KEY_A: &str = "arn:aws:kms:eu-west-1:1:key/a";
const SPOT_ROLE_ARN: &str = "arn:aws:iam::1:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot";

/// The policy KMS gives a key created without one: every use left to IAM.
fn default_key_policy() -> String {
    json!({"Version": "2012-10-17", "Id": "key-default-1", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "kms:*", "Resource": "*"}]})
    .to_string()
}

/// The default policy plus the statement preflight prints.
fn spot_key_policy() -> String {
    let mut p: serde_json::Value = serde_json::from_str(&default_key_policy()).unwrap();
    p["Statement"].as_array_mut().unwrap().push(spot_kms::statement(SPOT_ROLE_ARN));
    p.to_string()
}

fn customer_key(policy: String) -> KeyFacts {
    KeyFacts {
        id: KEY_A.into(),
        volumes: vec!["vol-root".into()],
        key: Ok(KmsKey { arn: KEY_A.into(), manager: "CUSTOMER".into() }),
        policy: Some(Ok(policy)),
        grants: Some(Ok(vec![])),
    }
}

fn instance() -> Instance {
    Instance {
        id: "i-1".into(),
        state: InstanceState::Running,
        tags: Tags::from([("lifeboat:node".into(), "k8s-master".into())]),
        instance_type: "t3.medium".into(),
        subnet_id: Some("subnet-1".into()),
        private_ip: Some("10.0.1.4".into()),
        primary_interface: Some(Attachment {
            interface_id: "eni-1".into(),
            attachment_id: "attach-1".into(),
            delete_on_termination: false,
        }),
        root_device: Some("/dev/xvda".into()),
        volumes: vec![
            AttachedVolume { device: "/dev/xvda".into(), volume_id: "vol-root".into(), delete_on_termination: false },
            AttachedVolume { device: "/dev/sdf".into(), volume_id: "vol-data".into(), delete_on_termination: false },
        ],
        instance_profile_arn: Some("arn:aws:iam::1:instance-profile/k8s-node".into()),
        spot: true,
        ..Instance::default()
    }
}

fn stack() -> Stack {
    let outputs = stack::EXPECTED
        .iter()
        .map(|k| (k.to_string(), "x".to_string()))
        .chain([
            (stack::NODE_ROLE.to_string(), "arn:aws:iam::1:role/k8s-node".to_string()),
            (stack::KMS_KEYS.to_string(), "arn:aws:kms:eu-west-1:1:key/a".to_string()),
        ])
        .collect();
    Stack { name: "lifeboat".into(), status: "CREATE_COMPLETE".into(), outputs, parameters: Default::default() }
}

fn probe() -> NodeProbe {
    NodeProbe {
        kubelet_unit: true,
        cloud_init: true,
        imdsv2: true,
        iam_role: Some("k8s-node".into()),
        instance_store: vec![],
        cloud_init_disabled_file: false,
        cloud_init_cmdline_disabled: false,
        manual_cache_clean: Some("/etc/cloud/cloud.cfg.d/05_logging.cfg:false".into()),
        manual_clean_marker: false,
        kubelet_after: Some("network-online.target system.slice sysinit.target".into()),
        hypervisor: None,
        nvme_serials: vec!["nvme0:volroot".into(), "nvme1:voldata".into()],
    }
}

/// A node that has everything.
fn facts() -> Facts {
    let i = instance();
    Facts {
        node: "k8s-master".into(),
        region: "eu-west-1".into(),
        node_tag: "lifeboat:node".into(),
        permissions: DRY_RUN_CALLS.iter().map(|op| (*op, Permission::Allowed)).collect(),
        instances: Ok(vec![i.clone()]),
        stack_name: "lifeboat".into(),
        stack: Ok(Some(stack())),
        concurrency: Ok(AccountConcurrency { limit: 1000, unreserved: 997 }),
        node_facts: Some(NodeFacts {
            instance: i,
            extras: Ok(InstanceExtras {
                vpc_id: Some("vpc-1".into()),
                root_device_type: Some("ebs".into()),
                spot_request_id: Some("sir-1".into()),
                owner_id: Some("1".into()),
            }),
            spot_request: Ok(Some(SpotRequest {
                id: "sir-1".into(),
                request_type: "one-time".into(),
                interruption_behavior: "terminate".into(),
            })),
            ssm_online: Ok(true),
            probe: Some(Ok(probe())),
            dry_run: Some(Ok(dry_run_ok())),
            elastic_ip: Ok(None),
            routes: Ok(vec![Route { destination: "0.0.0.0/0".into(), target: "nat-1".into() }]),
            endpoints: Ok(vec![]),
            volumes: Ok(vec![
                VolumeCrypto {
                    id: "vol-root".into(),
                    encrypted: true,
                    kms_key_id: Some("arn:aws:kms:eu-west-1:1:key/a".into()),
                },
                VolumeCrypto { id: "vol-data".into(), encrypted: false, kms_key_id: None },
            ]),
            keys: vec![customer_key(spot_key_policy())],
        }),
    }
}

/// The repair's dry run on a node that has everything, on its own IP.
fn dry_run_ok() -> DryRun {
    DryRun {
        result: "dry-run".into(),
        step: "preflight".into(),
        message: "same IP: would release the guard, start kubelet and verify".into(),
        warnings: vec![],
        relaunch: Some("ok".into()),
    }
}

fn node(f: &mut Facts) -> &mut NodeFacts {
    f.node_facts.as_mut().unwrap()
}

fn one(f: &Facts, id: &str) -> Check {
    checks(f).into_iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no check {id}"))
}

#[test]
fn a_node_that_has_everything_passes_every_check() {
    let all = checks(&facts());
    assert!(all.iter().all(|c| c.status == Status::Pass), "{all:#?}");
    assert_eq!(all.len(), 21);
}

#[test]
fn a_denied_dry_run_names_the_action_to_allow() {
    let mut f = facts();
    f.permissions[3].1 = Permission::Denied { message: "not authorized".into() };
    let c = one(&f, "credentials");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(c.fix.unwrap(), "allow ec2:DescribeSpotInstanceRequests to the identity running lifeboat");
}

#[test]
fn the_node_tag_must_name_exactly_one_running_instance() {
    let mut f = facts();
    f.instances = Ok(vec![]);
    f.node_facts = None;
    let c = one(&f, "node-tag");
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.unwrap().contains("Key=lifeboat:node,Value=k8s-master"));
    // Nothing about an instance is checked without one.
    assert!(checks(&f).iter().all(|c| c.id != "market"));

    let mut two = instance();
    two.id = "i-2".into();
    f.instances = Ok(vec![instance(), two]);
    assert!(one(&f, "node-tag").detail.contains("2 running instances are tagged lifeboat:node=k8s-master: i-1, i-2"));
}

#[test]
fn only_a_one_time_request_that_terminates_passes_the_market_check() {
    let mut f = facts();
    node(&mut f).spot_request = Ok(Some(SpotRequest {
        id: "sir-1".into(),
        request_type: "persistent".into(),
        interruption_behavior: "stop".into(),
    }));
    let c = one(&f, "market");
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("persistent and its interruption behaviour is stop"));
    node(&mut f).instance.spot = false;
    assert_eq!(one(&f, "market").status, Status::Pass);
}

#[test]
fn the_profiles_role_must_be_the_one_the_stack_may_pass() {
    let mut f = facts();
    node(&mut f).probe = Some(Ok(NodeProbe { iam_role: Some("other".into()), ..probe() }));
    let c = one(&f, "instance-profile");
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("the node's role is other, but the stack may pass only arn:aws:iam::1:role/k8s-node"));
    assert!(c.fix.unwrap().contains("NodeRoleArn=arn:aws:iam::1:role/other"));
    // In the partition and account of the node's profile.
    node(&mut f).instance.instance_profile_arn = Some("arn:aws-cn:iam::2:instance-profile/k8s-node".into());
    assert!(one(&f, "instance-profile").fix.unwrap().contains("NodeRoleArn=arn:aws-cn:iam::2:role/other"));

    node(&mut f).instance.instance_profile_arn = None;
    assert!(one(&f, "instance-profile").fix.unwrap().contains("AmazonSSMManagedInstanceCore"));
}

#[test]
fn without_ssm_the_role_and_the_node_are_not_checked_and_say_so() {
    let mut f = facts();
    node(&mut f).ssm_online = Ok(false);
    node(&mut f).probe = None;
    assert_eq!(one(&f, "ssm-agent").status, Status::Fail);
    assert_eq!(one(&f, "instance-profile").status, Status::Warn);
    let c = one(&f, "on-node");
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.starts_with("not checked"));
}

#[test]
fn an_interface_deleted_on_termination_is_fixed_by_a_backup() {
    let mut f = facts();
    node(&mut f).instance.primary_interface.as_mut().unwrap().delete_on_termination = true;
    let c = one(&f, "interface-kept");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(c.fix.unwrap(), "run lifeboat backup --node k8s-master (every backup keeps it)");
}

#[test]
fn the_replacement_reaches_ssm_through_an_elastic_ip_nat_or_endpoints() {
    let mut f = facts();
    let igw = vec![Route { destination: "0.0.0.0/0".into(), target: "igw-1".into() }];
    node(&mut f).routes = Ok(igw.clone());
    let c = one(&f, "network-path");
    assert_eq!(c.status, Status::Fail, "a public IP that is not elastic does not follow the kept interface");
    assert!(c.detail.contains("has no Elastic IP"));
    node(&mut f).elastic_ip = Ok(Some("203.0.113.7".into()));
    assert_eq!(one(&f, "network-path").status, Status::Pass);

    node(&mut f).elastic_ip = Ok(None);
    node(&mut f).routes = Ok(vec![]);
    node(&mut f).endpoints =
        Ok(["ssm", "ssmmessages"].iter().map(|s| format!("com.amazonaws.eu-west-1.{s}")).collect());
    let c = one(&f, "network-path");
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("no endpoint for ec2messages"), "{c:?}");
    node(&mut f).endpoints.as_mut().unwrap().push("com.amazonaws.eu-west-1.ec2messages".into());
    assert_eq!(one(&f, "network-path").status, Status::Pass);
}

#[test]
fn each_missing_piece_on_the_node_fails_its_own_check() {
    for (id, probe) in [
        ("kubelet", NodeProbe { kubelet_unit: false, ..probe() }),
        ("cloud-init", NodeProbe { cloud_init: false, ..probe() }),
        ("imdsv2", NodeProbe { imdsv2: false, ..probe() }),
        ("ebs", NodeProbe { instance_store: vec!["nvme1n1:/var/lib/etcd".into()], ..probe() }),
    ] {
        let mut f = facts();
        node(&mut f).probe = Some(Ok(probe));
        let failed: Vec<&'static str> =
            checks(&f).into_iter().filter(|c| c.status == Status::Fail).map(|c| c.id).collect();
        assert_eq!(failed, [id]);
    }
}

#[test]
fn an_instance_store_root_fails() {
    let mut f = facts();
    node(&mut f).extras.as_mut().unwrap().root_device_type = Some("instance-store".into());
    assert_eq!(one(&f, "ebs").status, Status::Fail);
}

#[test]
fn a_kms_key_the_stack_does_not_list_is_a_warning_with_the_parameter_to_set() {
    let mut f = facts();
    node(&mut f).volumes.as_mut().unwrap()[1] = VolumeCrypto {
        id: "vol-data".into(),
        encrypted: true,
        kms_key_id: Some("arn:aws:kms:eu-west-1:1:key/b".into()),
    };
    let c = one(&f, "kms");
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("vol-data (arn:aws:kms:eu-west-1:1:key/b)"));
    assert!(c.fix.unwrap().contains("EbsKmsKeyArns"));
}

#[test]
fn the_stack_must_be_deployed_with_this_versions_outputs() {
    let mut f = facts();
    f.stack = Ok(None);
    let c = one(&f, "stack");
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.unwrap().contains("--stack-name lifeboat --region eu-west-1"));
    let mut old = stack();
    old.outputs.remove(stack::VERSION);
    old.outputs.remove(stack::DASHBOARD);
    f.stack = Ok(Some(old));
    let c = one(&f, "stack");
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("lacks the outputs DashboardName, StackVersion"), "{c:?}");
}

#[test]
fn lifeboat_reserves_no_concurrency_and_needs_three_executions_at_once() {
    let mut f = facts();
    f.concurrency = Ok(AccountConcurrency { limit: 10, unreserved: 10 });
    assert_eq!(one(&f, "lambda-concurrency").status, Status::Pass, "a new account's 10 are enough");
    f.concurrency = Ok(AccountConcurrency { limit: 10, unreserved: 2 });
    let c = one(&f, "lambda-concurrency");
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("2 unreserved of 10") && c.detail.contains("need 3"), "{c:?}");
}
