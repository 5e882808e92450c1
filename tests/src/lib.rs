//! Test harness: the emulator in tests/emulator, reached with the real AWS SDK
//! over real HTTP.
//!
//! `make test` starts one emulator and passes its address in
//! `LIFEBOAT_EMULATOR_URL`; without it (a bare `cargo test`), the first test of
//! a process starts a private one from the Makefile's venv. Each [`Emulator`]
//! acts in an account of its own, so tests run in parallel on one emulator
//! without seeing each other's instances.

pub mod runtime;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub const REGION: &str = "eu-west-1";
/// An AMI id moto knows, to launch the seed instances from.
pub const BASE_AMI: &str = "ami-12c6146b";

pub struct Emulator {
    pub url: String,
    pub account: String,
}

struct Private {
    url: String,
    _child: Child,
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn private_emulator() -> &'static Private {
    static PRIVATE: OnceLock<Private> = OnceLock::new();
    PRIVATE.get_or_init(|| {
        let root = workspace_root();
        let python = root.join(".venv/bin/python");
        assert!(python.exists(), "{} is missing: run `make venv` (or `make test`, which makes it)", python.display());
        let mut child = Command::new(python)
            .arg(root.join("tests/emulator/emulator.py"))
            .args(["--port", "0", "--exit-with-parent"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("the emulator's first line").to_string();
        Private { url, _child: child }
    })
}

impl Emulator {
    /// A fresh account on the shared emulator.
    pub fn new() -> Emulator {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let url = std::env::var("LIFEBOAT_EMULATOR_URL").unwrap_or_else(|_| private_emulator().url.clone());
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let account = format!("{:07}{:05}", std::process::id() % 10_000_000, n % 100_000);
        Emulator { url, account }
    }

    /// SDK configuration that reaches this emulator account. Retries are the
    /// product's own ([`lifeboat_aws::retry_config`]).
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                format!("LB{}EMULATOR", self.account),
                "secret",
                None,
                None,
                "tests",
            ))
            .retry_config(lifeboat_aws::retry_config())
            .load()
            .await
    }

    /// The environment that points a program at this account with the
    /// tests' own credentials, which IAM does not restrict (setup, and the
    /// few tests that say why they run a function unrestricted).
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_as("EMULATOR")
    }

    /// The environment of a lifeboat function as the stack deploys it: its
    /// own role, whose policy the emulator enforces (tests/emulator/iam.py),
    /// and the stack's settings (the handler sends the stack's documents).
    pub fn function_env(&self, function: &str) -> Vec<(String, String)> {
        let identity = match function {
            "scheduled-backup" => "SCHEDULEDBACKUP",
            "retention-pruner" => "RETENTIONPRUNER",
            "interruption-handler" => "INTERRUPTIONHANDLER",
            other => panic!("{other} is not a lifeboat function"),
        };
        let mut env = self.env_as(identity);
        if function == "interruption-handler" {
            env.push(("LIFEBOAT_SSM_DOCUMENTS".into(), stack::NAME.into()));
            // The drill's own identity and network, as the stack sets them.
            env.push(("LIFEBOAT_DRILL_INSTANCE_PROFILE".into(), self.drill_instance_profile()));
            env.push(("LIFEBOAT_DRILL_SECURITY_GROUP".into(), self.drill_security_group()));
        }
        env
    }

    /// The stack's drill instance profile (DrillInstanceProfile holding
    /// DrillInstanceRole), named as the emulator deploys the template's
    /// policies (infra/check_stack.py's Stack.physical): the handler may pass
    /// that role; returns the profile's ARN.
    pub fn drill_instance_profile(&self) -> String {
        self.instance_profile_with_role(stack::DRILL_PROFILE, stack::DRILL_ROLE)
    }

    /// The drill's security group (DrillSecurityGroup, or the one the stack
    /// makes in VpcId): HTTPS and DNS out only; returns its id.
    pub fn drill_security_group(&self) -> String {
        let name = "lifeboat-drill";
        let create = format!(
            "Action=CreateSecurityGroup&GroupName={name}&GroupDescription=lifeboat%20drill%20clones&Version=2016-11-15"
        );
        let (status, response) = self.query("ec2", &create);
        let response = if status == 200 {
            response
        } else {
            assert!(response.contains("Duplicate"), "{status} {response}");
            let (status, response) =
                self.query("ec2", &format!("Action=DescribeSecurityGroups&GroupName.1={name}&Version=2016-11-15"));
            assert_eq!(status, 200, "{response}");
            response
        };
        let start = response.find("<groupId>").expect(&response) + "<groupId>".len();
        let end = start + response[start..].find("</groupId>").unwrap();
        response[start..end].to_string()
    }

    /// The environment of an operator running the `lifeboat` command, whose
    /// policy (infra/iam-policy-operator.json) the emulator enforces.
    pub fn operator_env(&self) -> Vec<(String, String)> {
        self.env_as("OPERATOR")
    }

    fn env_as(&self, identity: &str) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", format!("LB{}{identity}", self.account)),
            ("AWS_SECRET_ACCESS_KEY", "secret".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config().await)
    }

    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config().await)
    }

    pub async fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config().await)
    }

    /// A control API call (see tests/emulator/emulator.py); panics on an error.
    pub fn control(&self, method: &str, path: &str, body: &Value) -> Value {
        let (status, response) = self.http(method, &format!("{path}?account={}", self.account), body);
        assert_eq!(status, 200, "{method} {path}: {response}");
        serde_json::from_str(&response).unwrap()
    }

    /// The requests IAM refused in this account so far, each
    /// `{"identity", "action", "resource", "reason"}` (tests/emulator/iam.py).
    pub fn iam_denials(&self) -> Vec<Value> {
        self.control("GET", "/lifeboat/iam/denials", &Value::Null).as_array().cloned().unwrap_or_default()
    }

    /// What the emulator could not judge under IAM in this account so far,
    /// each `{"identity", "action", "resource_type", "why"}`: let through,
    /// and recorded so that a test can name them.
    pub fn iam_not_evaluated(&self) -> Vec<Value> {
        self.control("GET", "/lifeboat/iam/not-evaluated", &Value::Null).as_array().cloned().unwrap_or_default()
    }

    /// Every operation (`service:Operation`) each identity (a function's name,
    /// or `operator`) called in this account so far, as IAM saw the requests.
    pub fn iam_calls(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        serde_json::from_value(self.control("GET", "/lifeboat/iam/calls", &Value::Null)).unwrap()
    }

    /// A planted fault: `change` edits the statements of `function`'s policy
    /// as deployed in this account (the stack's, until changed here).
    pub fn plant_policy(&self, function: &str, change: impl FnOnce(&mut Vec<Value>)) {
        let policies = self.control("GET", "/lifeboat/iam/policies", &Value::Null);
        let mut statements = policies[function].as_array().cloned().expect("a deployed function");
        change(&mut statements);
        let body = serde_json::json!({"function": function, "statements": statements});
        self.control("POST", "/lifeboat/iam/policy", &body);
    }

    /// Calls per operation that reached this account so far.
    pub fn calls(&self, operation: &str) -> u64 {
        self.call_counts().get(operation).copied().unwrap_or(0)
    }

    /// Calls per operation that reached this account so far, every operation.
    pub fn call_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let calls = self.control("GET", "/lifeboat/calls", &Value::Null);
        calls.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()
    }

    /// Calls of any operation that reached this account so far.
    pub fn total_calls(&self) -> u64 {
        self.call_counts().values().sum()
    }

    fn http(&self, method: &str, path: &str, body: &Value) -> (u16, String) {
        let body = if body.is_null() { String::new() } else { body.to_string() };
        self.raw(method, path, &[("Content-Type", "application/json")], &body)
    }

    /// An instance profile in this account's IAM holding the role of the
    /// same name (nodes need one for SSM; a launch with it passes that role,
    /// the stack's NodeRoleArn), made with the query API; returns its ARN.
    pub fn instance_profile(&self, name: &str) -> String {
        self.instance_profile_with_role(name, name)
    }

    /// An instance profile holding a role of another name; returns its ARN.
    pub fn instance_profile_with_role(&self, name: &str, role: &str) -> String {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let trust: String = form_urlencoded::byte_serialize(trust.as_bytes()).collect();
        for body in [
            format!("Action=CreateRole&RoleName={role}&AssumeRolePolicyDocument={trust}&Version=2010-05-08"),
            format!("Action=CreateInstanceProfile&InstanceProfileName={name}&Version=2010-05-08"),
            format!("Action=AddRoleToInstanceProfile&InstanceProfileName={name}&RoleName={role}&Version=2010-05-08"),
        ] {
            let (status, response) = self.query("iam", &body);
            let again = response.contains("EntityAlreadyExists") || response.contains("LimitExceeded");
            assert!(status == 200 || again, "{status} {response}");
        }
        format!("arn:aws:iam::{}:instance-profile/{name}", self.account)
    }

    /// One HTTP request to the emulator, as written: for requests the SDK
    /// would refuse to send (a required member missing).
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let address = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        write!(stream, "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// A query-protocol request in this account, for a service the tests
    /// have no SDK client for (IAM): unsigned, with the credential scope that
    /// names the service, as the SDK sends it.
    pub fn query(&self, service: &str, body: &str) -> (u16, String) {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=LB{}EMULATOR/20261126/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0",
            self.account
        );
        let headers = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Authorization", &auth)];
        self.raw("POST", "/", &headers, body)
    }

    /// A subnet in a new VPC.
    pub async fn subnet(&self) -> String {
        let ec2 = self.ec2().await;
        let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
        let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap();
        let subnet = ec2.create_subnet().vpc_id(vpc_id).cidr_block("10.0.1.0/24").send().await.unwrap();
        subnet.subnet().unwrap().subnet_id().unwrap().to_string()
    }

    /// Launches a spot instance with these tags and returns its id.
    pub async fn launch(&self, subnet: &str, tags: &[(&str, &str)]) -> String {
        let ec2 = self.ec2().await;
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
        let out = ec2
            .run_instances()
            .image_id(BASE_AMI)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
            .min_count(1)
            .max_count(1)
            .subnet_id(subnet)
            .instance_market_options(
                aws_sdk_ec2::types::InstanceMarketOptionsRequest::builder()
                    .market_type(aws_sdk_ec2::types::MarketType::Spot)
                    .build(),
            )
            .set_tag_specifications((!tags.is_empty()).then(|| {
                vec![TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(tags)).build()]
            }))
            .send()
            .await
            .unwrap();
        out.instances()[0].instance_id().unwrap().to_string()
    }
}

impl Default for Emulator {
    fn default() -> Self {
        Emulator::new()
    }
}

/// A node as scheduled-backup leaves it: backed up and prepared.
#[derive(Debug, Clone)]
pub struct Node {
    pub instance: String,
    pub private_ip: String,
    /// Its scheduled backup.
    pub image: String,
    pub root_volume: String,
    pub data_volume: String,
}

impl Emulator {
    /// Launches a spot instance with a root and a data volume (`/dev/sdf`),
    /// the instance profile `k8s-node` and these tags; returns its id.
    pub async fn launch_node(&self, subnet: &str, tags: &[(&str, &str)]) -> String {
        let ec2 = self.ec2().await;
        let iam = self.instance_profile("k8s-node");
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
        let data = aws_sdk_ec2::types::BlockDeviceMapping::builder()
            .device_name("/dev/sdf")
            .ebs(aws_sdk_ec2::types::EbsBlockDevice::builder().volume_size(20).delete_on_termination(true).build())
            .build();
        let out = ec2
            .run_instances()
            .image_id(BASE_AMI)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
            .min_count(1)
            .max_count(1)
            .subnet_id(subnet)
            .block_device_mappings(data)
            .iam_instance_profile(aws_sdk_ec2::types::IamInstanceProfileSpecification::builder().arn(iam).build())
            .instance_market_options(
                aws_sdk_ec2::types::InstanceMarketOptionsRequest::builder()
                    .market_type(aws_sdk_ec2::types::MarketType::Spot)
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(tags)).build(),
            )
            .send()
            .await
            .unwrap();
        out.instances()[0].instance_id().unwrap().to_string()
    }

    /// A spot node "k8s-master" with a data volume, backed up (and so
    /// prepared) by the real scheduled-backup; from then on new images stay
    /// pending as long as on AWS.
    pub async fn backed_up_node(&self) -> Node {
        self.backed_up("k8s-master").await
    }

    pub async fn backed_up(&self, name: &str) -> Node {
        self.control("POST", "/lifeboat/config", &serde_json::json!({"ami_pending_seconds": 0}));
        let subnet = self.subnet().await;
        let instance =
            self.launch_node(&subnet, &[("lifeboat:node", name), ("Name", name), ("team", "platform")]).await;
        let run = runtime::invoke(
            "scheduled-backup",
            &self.function_env("scheduled-backup"),
            &[serde_json::json!({"node": name})],
            std::time::Duration::from_secs(120),
        );
        let report = run.invocations.into_iter().next().expect(&run.stderr).response();
        assert_eq!(report["nodes"][0]["interface"]["outcome"], "kept", "{report}");
        assert_eq!(report["nodes"][0]["volumes"]["outcome"], "kept", "{report}");
        let image = report["nodes"][0]["image_id"].as_str().unwrap().to_string();
        self.control("POST", "/lifeboat/config", &serde_json::json!({"ami_pending_seconds": 600}));
        let described = self.instance(&instance).await;
        let volume_at = |device: &str| {
            described
                .block_device_mappings()
                .iter()
                .find(|m| m.device_name() == Some(device))
                .and_then(|m| m.ebs()?.volume_id())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no volume at {device}: {described:?}"))
        };
        Node {
            private_ip: described.private_ip_address().unwrap().to_string(),
            root_volume: volume_at(described.root_device_name().unwrap()),
            data_volume: volume_at("/dev/sdf"),
            instance,
            image,
        }
    }

    pub async fn instance(&self, id: &str) -> aws_sdk_ec2::types::Instance {
        let out = self.ec2().await.describe_instances().instance_ids(id).send().await.unwrap();
        out.reservations()[0].instances()[0].clone()
    }

    /// The instances tagged `lifeboat:replaces=<old>`.
    pub async fn replacements(&self, old: &str) -> Vec<aws_sdk_ec2::types::Instance> {
        self.instances_tagged("lifeboat:replaces", old).await
    }

    pub async fn instances_tagged(&self, key: &str, value: &str) -> Vec<aws_sdk_ec2::types::Instance> {
        let filter = aws_sdk_ec2::types::Filter::builder().name(format!("tag:{key}")).values(value).build();
        let out = self.ec2().await.describe_instances().filters(filter).send().await.unwrap();
        out.reservations().iter().flat_map(|r| r.instances()).cloned().collect()
    }

    /// The root volume replacement tasks EC2 lists for an instance.
    pub async fn root_tasks(&self, instance: &str) -> Vec<aws_sdk_ec2::types::ReplaceRootVolumeTask> {
        let filter = aws_sdk_ec2::types::Filter::builder().name("instance-id").values(instance).build();
        let out = self.ec2().await.describe_replace_root_volume_tasks().filters(filter).send().await.unwrap();
        out.replace_root_volume_tasks().to_vec()
    }

    /// The volume id at `device` of an instance.
    pub async fn volume_at(&self, instance: &str, device: &str) -> Option<String> {
        let described = self.instance(instance).await;
        let mapping = described.block_device_mappings().iter().find(|m| m.device_name() == Some(device))?;
        mapping.ebs()?.volume_id().map(str::to_string)
    }

    pub async fn volume(&self, id: &str) -> Option<aws_sdk_ec2::types::Volume> {
        let filter = aws_sdk_ec2::types::Filter::builder().name("volume-id").values(id).build();
        let out = self.ec2().await.describe_volumes().filters(filter).send().await.unwrap();
        out.volumes().first().cloned()
    }

    /// The user data an instance was launched with, decoded.
    pub async fn user_data(&self, instance: &str) -> String {
        let out = self
            .ec2()
            .await
            .describe_instance_attribute()
            .instance_id(instance)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .unwrap();
        let encoded = out.user_data().and_then(|u| u.value()).unwrap_or_default();
        String::from_utf8(aws_smithy_types::base64::decode(encoded).unwrap()).unwrap()
    }

    /// A spot interruption as EC2 carries it out: `action` (terminate, stop,
    /// hibernate) `after` seconds from now.
    pub fn interrupt(&self, instance: &str, action: &str, after: f64) {
        self.control(
            "POST",
            &format!("/lifeboat/interrupt/{instance}"),
            &serde_json::json!({"action": action, "after_seconds": after}),
        );
    }

    /// EC2 refuses the next swap of a preserved root (`VolumeId`), and new
    /// images stay pending 20 s: the replacement boots the backup and the
    /// final image becomes available soon after.
    pub fn refuse_next_old_root_swap(&self) {
        self.control("POST", "/lifeboat/config", &serde_json::json!({"ami_pending_seconds": 20}));
        self.control(
            "POST",
            "/lifeboat/faults",
            &serde_json::json!({"operation": "CreateReplaceRootVolumeTask", "code": "InvalidParameterValue",
                                "status": 400, "count": 1, "body_contains": "VolumeId="}),
        );
    }

    /// The next commands' results: the repair's or the health check's JSON line.
    /// A quarantined repair's result line on a drill clone: repaired, the
    /// live node unreachable, the drill profile's credentials.
    pub fn drill_repaired(&self) -> String {
        format!(
            r#"{{"result":"repaired","step":"verify","guard":"released","node":"k8s-master","quarantine":true,"isolation":{{"live_unreachable":["10.0.1.4:6443"],"instance_profile":"{}"}}}}"#,
            self.drill_instance_profile()
        )
    }

    pub fn command_results(&self, lines: &[&str]) {
        let results: Vec<Value> = lines.iter().map(|l| serde_json::json!({"status": "Success", "stdout": l})).collect();
        self.control("POST", "/lifeboat/config", &serde_json::json!({"command_results": results}));
    }
}

/// events/spot-interruption-warning.json for this instance.
pub fn warning(instance: &str) -> Value {
    let mut event = fixture("spot-interruption-warning.json");
    event["detail"]["instance-id"] = serde_json::json!(instance);
    event["resources"] = serde_json::json!([format!("arn:aws:ec2:eu-west-1b:instance/{instance}")]);
    event
}

/// The tags of an EC2 resource as (key, value) pairs, sorted.
pub fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = tags
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .collect();
    pairs.sort();
    pairs
}

/// A JSON file under events/.
pub fn fixture(name: &str) -> Value {
    let path = workspace_root().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A deployed-looking lifeboat stack for the `lifeboat` CLI: a CloudFormation
/// stack with the template's outputs (and two of its alarms), whose functions
/// the emulator's Lambda runs as the workspace's own binaries.
pub mod stack {
    use super::{Emulator, REGION, runtime};
    use serde_json::{Value, json};

    pub const NAME: &str = "lifeboat";
    /// The drill's instance profile and its role, as the template names
    /// them in this deployment (infra/check_stack.py's Stack.physical).
    pub const DRILL_PROFILE: &str = "lifeboat-DrillInstanceProfile-SAMPLE";
    pub const DRILL_ROLE: &str = "lifeboat-DrillInstanceRole-SAMPLE";

    /// The outputs of a deployed lifeboat stack in this account.
    pub fn outputs(emu: &Emulator) -> Value {
        json!({
            "ScheduledBackupFunctionName": "lifeboat-scheduled-backup",
            "RetentionPrunerFunctionName": "lifeboat-retention-pruner",
            "InterruptionHandlerFunctionName": "lifeboat-interruption-handler",
            "TopicArn": format!("arn:aws:sns:{REGION}:{}:lifeboat", emu.account),
            "FailedEventsQueueUrl": format!("https://sqs.{REGION}.amazonaws.com/{}/lifeboat-failed", emu.account),
            "RepairDocumentName": "lifeboat-repair",
            "HealthDocumentName": "lifeboat-health",
            "DashboardName": "lifeboat",
            "NodeRoleArn": format!("arn:aws:iam::{}:role/k8s-node", emu.account),
            "EbsKmsKeyArns": format!("arn:aws:kms:{REGION}:{}:key/lifeboat", emu.account),
            "StackVersion": "0.1.0",
        })
    }

    /// The stack's resources as the template makes them, reduced to what
    /// the tool reads: its alarms and its outputs.
    fn template(outputs: &Value) -> String {
        let alarm = |metric: &str| {
            json!({"Type": "AWS::CloudWatch::Alarm", "Properties": {
                "Namespace": "lifeboat", "MetricName": metric, "Statistic": "Sum", "Period": 60,
                "EvaluationPeriods": 1, "Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold"}})
        };
        let outputs: serde_json::Map<String, Value> =
            outputs.as_object().unwrap().iter().map(|(k, v)| (k.clone(), json!({"Value": v}))).collect();
        json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {
                "Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"},
                "RelaunchFailed": alarm("RelaunchFailed"),
                "NoRecentBackup": alarm("NodesBackedUp"),
            },
            "Outputs": outputs,
        })
        .to_string()
    }

    /// CreateStack, as `sam deploy` would leave it, and the functions its
    /// outputs name registered with the emulator's Lambda.
    pub fn deploy(emu: &Emulator, outputs: &Value) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "CreateStack")
            .append_pair("Version", "2010-05-15")
            .append_pair("StackName", NAME)
            .append_pair("TemplateBody", &template(outputs))
            .finish();
        let (status, answer) = emu.query("cloudformation", &body);
        assert_eq!(status, 200, "{answer}");
        let function = |bin: &str, timeout: u64| {
            let env: serde_json::Map<String, Value> =
                emu.function_env(bin).into_iter().map(|(k, v)| (k, json!(v))).collect();
            json!({"binary": runtime::binary(bin), "env": env, "timeout_seconds": timeout})
        };
        emu.control(
            "POST",
            "/lifeboat/functions",
            &json!({"functions": {
                "lifeboat-scheduled-backup": function("scheduled-backup", 120),
                "lifeboat-retention-pruner": function("retention-pruner", 600),
                "lifeboat-interruption-handler": function("interruption-handler", 900),
            }}),
        );
    }
}
