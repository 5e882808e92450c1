//! `lifeboat preflight`: everything a relaunch of the node needs, checked
//! read-only, each check with the exact fix. [`gather`] reads the facts
//! (Describe calls, DryRun permission checks, two read-only SSM commands:
//! the probe and the repair's own dry run); [`checks`] decides, as a pure
//! function of them.

pub mod dry_run;
mod gather;
mod instance;
mod keys;
mod network;
mod on_node;
pub mod probe;
pub mod spot_kms;

pub use gather::gather;
use instance::{bare_metal, ebs_only, instance_profile, interface_kept, market, ssm_agent};
use keys::{kms, spot_kms};
use network::network_path;
use on_node::{on_node, repair};

use crate::ports::{
    AccountConcurrency, InstanceExtras, KeyGrant, KmsKey, Permission, Route, SpotRequest, Stack, VolumeCrypto,
};
use crate::stack;
use dry_run::DryRun;
use lifeboat_core::model::{Instance, InstanceState};
use probe::NodeProbe;
use serde::Serialize;

/// A fact that could not be read carries why.
pub type Read<T> = Result<T, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(id: &'static str, detail: impl Into<String>) -> Check {
        Check { id, status: Status::Pass, detail: detail.into(), fix: None }
    }
    fn warn(id: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { id, status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(id: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { id, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// The EC2 calls whose DryRun tells whether the operator's credentials may
/// make them (EC2 answers DryRunOperation or UnauthorizedOperation).
pub const DRY_RUN_CALLS: &[&str] = &[
    "DescribeInstances",
    "DescribeImages",
    "DescribeVolumes",
    "DescribeSpotInstanceRequests",
    "DescribeAddresses",
    "DescribeRouteTables",
    "DescribeVpcEndpoints",
];

/// A KMS key that encrypts some of the node's volumes.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFacts {
    /// The key as the volumes name it (their KmsKeyId).
    pub id: String,
    pub volumes: Vec<String>,
    pub key: Read<KmsKey>,
    /// Read for a customer managed key when a relaunch may run on spot.
    pub policy: Option<Read<String>>,
    pub grants: Option<Read<Vec<KeyGrant>>>,
}

/// What EC2, SSM and the node say about the node's one running instance.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    pub instance: Instance,
    pub extras: Read<InstanceExtras>,
    pub spot_request: Read<Option<SpotRequest>>,
    pub ssm_online: Read<bool>,
    /// `None` when the agent is not online (nothing could be sent).
    pub probe: Option<Read<NodeProbe>>,
    /// The repair's dry run; `None` when the agent is not online.
    pub dry_run: Option<Read<DryRun>>,
    pub elastic_ip: Read<Option<String>>,
    pub routes: Read<Vec<Route>>,
    pub endpoints: Read<Vec<String>>,
    pub volumes: Read<Vec<VolumeCrypto>>,
    /// The keys of the encrypted volumes, one entry per key.
    pub keys: Vec<KeyFacts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub node: String,
    pub region: String,
    pub node_tag: String,
    pub permissions: Vec<(&'static str, Permission)>,
    /// The instances carrying the node tag with this node's name, any state.
    pub instances: Read<Vec<Instance>>,
    pub stack_name: String,
    pub stack: Read<Option<Stack>>,
    pub concurrency: Read<AccountConcurrency>,
    /// Read when exactly one instance of the node runs.
    pub node_facts: Option<NodeFacts>,
}

/// Every check, in the order a person fixes them.
pub fn checks(f: &Facts) -> Vec<Check> {
    let mut all = vec![credentials(&f.permissions), node_tag(f)];
    if let Some(n) = &f.node_facts {
        let stack = f.stack.as_ref().ok().and_then(Option::as_ref);
        all.push(market(n));
        all.push(instance_profile(n, stack));
        all.push(ssm_agent(n));
        all.push(interface_kept(n, &f.node));
        all.push(network_path(n, &f.region));
        all.extend(on_node(n));
        all.push(repair(n));
        all.push(ebs_only(n));
        all.push(bare_metal(n, stack));
        all.push(kms(n, stack));
        all.push(spot_kms(n, stack, &f.region));
    }
    all.push(stack_deployed(f));
    all.push(concurrency(f));
    all
}

fn credentials(permissions: &[(&'static str, Permission)]) -> Check {
    let denied: Vec<&str> =
        permissions.iter().filter(|(_, p)| matches!(p, Permission::Denied { .. })).map(|(op, _)| *op).collect();
    let unknown: Vec<String> = permissions
        .iter()
        .filter_map(|(op, p)| match p {
            Permission::Unknown { message } => Some(format!("{op}: {message}")),
            _ => None,
        })
        .collect();
    if !denied.is_empty() {
        let actions: Vec<String> = denied.iter().map(|op| format!("ec2:{op}")).collect();
        return Check::fail(
            "credentials",
            format!("your credentials may not call {} (DryRun)", denied.join(", ")),
            format!("allow {} to the identity running lifeboat", actions.join(", ")),
        );
    }
    if !unknown.is_empty() {
        return Check::warn(
            "credentials",
            format!("DryRun gave no permission answer: {}", unknown.join("; ")),
            "check the region and the network path to EC2, then run preflight again",
        );
    }
    Check::pass("credentials", format!("DryRun: {} allowed", permissions.len()))
}

fn node_tag(f: &Facts) -> Check {
    let tag = format!("{}={}", f.node_tag, f.node);
    let instances = match &f.instances {
        Ok(i) => i,
        Err(e) => {
            return Check::fail("node-tag", format!("could not list instances tagged {tag}: {e}"), "see the error");
        }
    };
    let running: Vec<&Instance> = instances.iter().filter(|i| i.state == InstanceState::Running).collect();
    match running.as_slice() {
        [one] => Check::pass("node-tag", format!("{} is the one running instance tagged {tag}", one.id)),
        [] => Check::fail(
            "node-tag",
            format!("no running instance is tagged {tag} ({} in other states)", instances.len()),
            format!("aws ec2 create-tags --resources <instance id> --tags Key={},Value={}", f.node_tag, f.node),
        ),
        many => {
            let ids: Vec<&str> = many.iter().map(|i| i.id.as_str()).collect();
            Check::fail(
                "node-tag",
                format!("{} running instances are tagged {tag}: {}", many.len(), ids.join(", ")),
                format!(
                    "keep the tag on the control-plane instance only: aws ec2 delete-tags --resources <other id> --tags Key={}",
                    f.node_tag
                ),
            )
        }
    }
}

fn stack_deployed(f: &Facts) -> Check {
    let name = &f.stack_name;
    match &f.stack {
        Err(e) => Check::fail("stack", format!("DescribeStacks failed: {e}"), "allow cloudformation:DescribeStacks"),
        Ok(None) => Check::fail(
            "stack",
            format!("no stack {name} in {}", f.region),
            format!(
                "deploy lifeboat: sam deploy --template-file packaged.yaml --stack-name {name} --region {} --capabilities CAPABILITY_IAM",
                f.region
            ),
        ),
        Ok(Some(s)) if !s.is_deployed() => {
            Check::fail("stack", format!("stack {name} is {}", s.status), "fix or delete the stack, then deploy again")
        }
        Ok(Some(s)) => match (s.output(stack::VERSION), s.missing_outputs()) {
            (Some(v), missing) if missing.is_empty() => {
                Check::pass("stack", format!("{name} {v} ({}) in {}", s.status, f.region))
            }
            (_, missing) => Check::warn(
                "stack",
                format!("{name} ({}) lacks the outputs {}", s.status, missing.join(", ")),
                "update the stack with this release's packaged template",
            ),
        },
    }
}

fn concurrency(f: &Facts) -> Check {
    let c = match &f.concurrency {
        Ok(c) => c,
        Err(e) => {
            return Check::warn(
                "lambda-concurrency",
                format!("GetAccountSettings failed: {e}"),
                "allow lambda:GetAccountSettings",
            );
        }
    };
    // The stack reserves none: its functions run from the account's
    // unreserved pool, a relaunch beside a backup and a prune at least.
    let needed = stack::CONCURRENT_AT_LEAST;
    let detail = format!(
        "{} unreserved of {} (lifeboat reserves none; a relaunch, a backup and a prune at once need {needed}, and one more per node interrupted together)",
        c.unreserved, c.limit
    );
    if c.unreserved >= needed {
        Check::pass("lambda-concurrency", detail)
    } else {
        Check::fail(
            "lambda-concurrency",
            detail,
            "ask for more Lambda concurrency: Service Quotas > AWS Lambda > Concurrent executions (L-B99A9384), e.g. 1000",
        )
    }
}

#[cfg(test)]
mod tests;
