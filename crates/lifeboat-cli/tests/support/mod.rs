//! The emulator with the services the tool calls (tests/emulator/services.py),
//! a deployed-looking stack, and the `lifeboat` binary pointed at them.
//!
//! `make test`'s shared emulator, or the harness's private one.

#![allow(dead_code)]

use lifeboat_tests::{Emulator, runtime};
use serde_json::{Value, json};

#[allow(unused_imports)]
pub use lifeboat_tests::stack::{NAME as STACK, outputs};

/// A fresh account on the shared emulator (tests/emulator, services.py
/// included).
pub fn emulator() -> Emulator {
    Emulator::new()
}

/// The stack, deployed in this account (see `lifeboat_tests::stack`).
pub async fn deploy(emu: &Emulator, outputs: &Value) {
    lifeboat_tests::stack::deploy(emu, outputs);
}

/// `lifeboat` with only this account's AWS environment.
pub fn lifeboat(emu: &Emulator) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("lifeboat").unwrap();
    cmd.env_clear()
        .envs(emu.operator_env())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// What preflight's read-only command prints on a node that has everything.
/// On Nitro each EBS volume is an NVMe controller whose serial is the
/// volume id without its hyphen.
pub async fn healthy_probe(emu: &Emulator, instance: &str, role: &str) -> String {
    let described = emu.instance(instance).await;
    let serials: Vec<String> = described
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.volume_id()))
        .enumerate()
        .map(|(i, v)| format!("nvme{i}:{}", v.replacen('-', "", 1)))
        .collect();
    format!(
        "lifeboat-probe=1\nkubelet_unit=yes\ncloud_init=yes\nimdsv2=yes\niam_role={role}\n\
         instance_store=\ncloud_init_disabled_file=no\ncloud_init_cmdline_disabled=no\nmanual_cache_clean=\n\
         manual_clean_marker=no\nkubelet_after=network-online.target system.slice\nhypervisor=\nnvme_serials={}\n",
        serials.join(",")
    )
}

/// The result line of the repair's dry run (the stack's repair document with
/// `--dry-run`) on a node that has everything, on its own IP.
pub const DRY_RUN_OK: &str = r#"{"result":"dry-run","step":"preflight","old_ip":"10.0.1.4","new_ip":"10.0.1.4","node":"k8s-master","backup":"","quarantine":false,"guard":"self-released","guard_reason":"","relaunch":"ok","changed":[],"warnings":[],"message":"same IP: would pin the node name if needed, release the guard, start kubelet and verify /readyz, etcd and node k8s-master"}"#;

/// Gives the node's interface an Elastic IP and its subnet's VPC a route to
/// an internet gateway: how a replacement on the kept interface is reached.
pub async fn public_path(emu: &Emulator, instance: &str) {
    let ec2 = emu.ec2().await;
    let described = emu.instance(instance).await;
    let vpc = described.vpc_id().unwrap().to_string();
    let eni = described.network_interfaces()[0].network_interface_id().unwrap().to_string();
    let igw = ec2.create_internet_gateway().send().await.unwrap();
    let igw = igw.internet_gateway().unwrap().internet_gateway_id().unwrap().to_string();
    ec2.attach_internet_gateway().internet_gateway_id(&igw).vpc_id(&vpc).send().await.unwrap();
    let main = aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc).build();
    let tables = ec2.describe_route_tables().filters(main).send().await.unwrap();
    let table = tables.route_tables()[0].route_table_id().unwrap().to_string();
    ec2.create_route()
        .route_table_id(&table)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&igw)
        .send()
        .await
        .unwrap();
    let eip = ec2.allocate_address().domain(aws_sdk_ec2::types::DomainType::Vpc).send().await.unwrap();
    ec2.associate_address()
        .allocation_id(eip.allocation_id().unwrap())
        .network_interface_id(&eni)
        .send()
        .await
        .unwrap();
}

/// A node as scheduled-backup leaves it: backed up and prepared.
pub struct Prepared {
    pub instance: String,
    pub private_ip: String,
    /// Its backup.
    pub image: String,
    /// Its EBS volumes, every one kept by the backup's preparation.
    pub volumes: usize,
}

/// A spot node with a data volume and the instance profile `k8s-node`,
/// backed up (and so prepared) by the real scheduled-backup binary.
pub async fn prepared_node(emu: &Emulator, name: &str) -> Prepared {
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
    let subnet = emu.subnet().await;
    let instance = emu.launch_node(&subnet, &[("lifeboat:node", name), ("Name", name)]).await;
    prepare(emu, name, instance).await
}

/// The same node with its data volume encrypted under this KMS key.
pub async fn prepared_node_with_key(emu: &Emulator, name: &str, key_arn: &str) -> Prepared {
    use aws_sdk_ec2::types::{
        BlockDeviceMapping, EbsBlockDevice, IamInstanceProfileSpecification, InstanceMarketOptionsRequest,
        InstanceType, MarketType, ResourceType, Tag, TagSpecification,
    };
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
    let subnet = emu.subnet().await;
    let data = BlockDeviceMapping::builder()
        .device_name("/dev/sdf")
        .ebs(
            EbsBlockDevice::builder()
                .volume_size(20)
                .delete_on_termination(true)
                .encrypted(true)
                .kms_key_id(key_arn)
                .build(),
        )
        .build();
    let out = emu
        .ec2()
        .await
        .run_instances()
        .image_id(lifeboat_tests::BASE_AMI)
        .instance_type(InstanceType::T3Medium)
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet)
        .block_device_mappings(data)
        .iam_instance_profile(IamInstanceProfileSpecification::builder().arn(emu.instance_profile("k8s-node")).build())
        .instance_market_options(InstanceMarketOptionsRequest::builder().market_type(MarketType::Spot).build())
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key("lifeboat:node").value(name).build())
                .tags(Tag::builder().key("Name").value(name).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let instance = out.instances()[0].instance_id().unwrap().to_string();
    prepare(emu, name, instance).await
}

/// Backs the node up with the real scheduled-backup binary, which prepares it.
async fn prepare(emu: &Emulator, name: &str, instance: String) -> Prepared {
    let run = runtime::invoke(
        "scheduled-backup",
        &emu.function_env("scheduled-backup"),
        &[json!({"node": name})],
        std::time::Duration::from_secs(120),
    );
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["nodes"][0]["interface"]["outcome"], "kept", "{report}");
    assert_eq!(report["nodes"][0]["volumes"]["outcome"], "kept", "{report}");
    let described = emu.instance(&instance).await;
    Prepared {
        private_ip: described.private_ip_address().unwrap().to_string(),
        image: report["nodes"][0]["image_id"].as_str().unwrap().to_string(),
        volumes: described.block_device_mappings().len(),
        instance,
    }
}
