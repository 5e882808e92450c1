//! The checks of the instance itself: its market, profile, agent, interface
//! and volumes, as EC2 and SSM describe them.

use super::*;

const MARKET_FIX: &str = "relaunch the node as on-demand, or as spot with --instance-market-options \
     'MarketType=spot,SpotOptions={SpotInstanceType=one-time,InstanceInterruptionBehavior=terminate}'";

pub(super) fn market(n: &NodeFacts) -> Check {
    if !n.instance.spot {
        return Check::pass("market", "on-demand: never interrupted by EC2");
    }
    match &n.spot_request {
        Err(e) => Check::warn(
            "market",
            format!("spot; the spot request could not be read: {e}"),
            "allow ec2:DescribeSpotInstanceRequests",
        ),
        Ok(None) => Check::warn(
            "market",
            "spot, with no spot request EC2 describes",
            "look at the instance's spot request in the console",
        ),
        Ok(Some(r)) if r.request_type == "one-time" && r.interruption_behavior == "terminate" => {
            Check::pass("market", format!("spot, one-time request {} that terminates", r.id))
        }
        Ok(Some(r)) => Check::fail(
            "market",
            format!(
                "spot request {} is {} and its interruption behaviour is {}: EC2 would stop the node and start it \
                 again itself, and lifeboat relaunches only a terminated node",
                r.id, r.request_type, r.interruption_behavior
            ),
            MARKET_FIX,
        ),
    }
}

/// The name of a role from its ARN (`arn:aws:iam::1:role/path/name`).
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The role's ARN in the partition and account of the instance profile
/// (`arn:<partition>:iam::<account>:instance-profile/...`).
fn role_arn(profile: &str, role: &str) -> String {
    let mut parts = profile.split(':');
    let partition = parts.nth(1).filter(|p| !p.is_empty()).unwrap_or("aws");
    let account = parts.nth(2).filter(|a| !a.is_empty()).unwrap_or("<account>");
    format!("arn:{partition}:iam::{account}:role/{role}")
}

pub(super) fn instance_profile(n: &NodeFacts, stack: Option<&Stack>) -> Check {
    let Some(profile) = &n.instance.instance_profile_arn else {
        return Check::fail(
            "instance-profile",
            "the node has no instance profile: its SSM agent cannot register, so no repair can reach a replacement",
            "attach an instance profile whose role has the AmazonSSMManagedInstanceCore policy \
             (aws ec2 associate-iam-instance-profile), and deploy the stack with NodeRoleArn set to that role",
        );
    };
    let allowed = stack.and_then(|s| s.output(stack::NODE_ROLE));
    let role = match &n.probe {
        Some(Ok(p)) => p.iam_role.clone(),
        _ => None,
    };
    match (role, allowed) {
        (None, _) => Check::warn(
            "instance-profile",
            format!("{profile}; its role could not be read from the node (the check runs over SSM)"),
            format!("make sure the stack's NodeRoleArn ({}) is this profile's role", allowed.unwrap_or("not set")),
        ),
        (Some(role), None) => Check::fail(
            "instance-profile",
            format!("{profile} with role {role}, but the stack may pass no role to a replacement"),
            format!("deploy the stack with NodeRoleArn={}", role_arn(profile, &role)),
        ),
        (Some(role), Some(arn)) if role_name(arn) == role => {
            Check::pass("instance-profile", format!("{profile} with role {role}, the stack's NodeRoleArn"))
        }
        (Some(role), Some(arn)) => Check::fail(
            "instance-profile",
            format!("the node's role is {role}, but the stack may pass only {arn}"),
            format!("deploy the stack with NodeRoleArn={}", role_arn(profile, &role)),
        ),
    }
}

pub(super) fn ssm_agent(n: &NodeFacts) -> Check {
    match &n.ssm_online {
        Ok(true) => Check::pass("ssm-agent", format!("{} is an Online managed node", n.instance.id)),
        Ok(false) => Check::fail(
            "ssm-agent",
            format!("{} is not an Online managed node", n.instance.id),
            "install and start amazon-ssm-agent, give the instance profile AmazonSSMManagedInstanceCore, \
             and let it reach ssm, ssmmessages and ec2messages (see network-path)",
        ),
        Err(e) => Check::fail(
            "ssm-agent",
            format!("DescribeInstanceInformation failed: {e}"),
            "allow ssm:DescribeInstanceInformation",
        ),
    }
}

pub(super) fn interface_kept(n: &NodeFacts, node: &str) -> Check {
    match &n.instance.primary_interface {
        Some(a) if !a.delete_on_termination => Check::pass(
            "interface-kept",
            format!("{} is kept on termination (same private IP for the replacement)", a.interface_id),
        ),
        Some(a) => Check::fail(
            "interface-kept",
            format!(
                "{} is deleted with the instance (DeleteOnTermination=true): a replacement gets a new interface",
                a.interface_id
            ),
            format!("run lifeboat backup --node {node} (every backup keeps it)"),
        ),
        None => Check::fail(
            "interface-kept",
            "the instance has no primary interface EC2 describes",
            "look at the instance in the console",
        ),
    }
}

pub(super) fn ebs_only(n: &NodeFacts) -> Check {
    let root = n.extras.as_ref().ok().and_then(|e| e.root_device_type.clone());
    let mounted = match &n.probe {
        Some(Ok(p)) => p.mounted_instance_store().iter().map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    };
    if root.as_deref() == Some("instance-store") {
        return Check::fail(
            "ebs",
            "the root device is instance store: it is gone with the instance",
            "move the node to an EBS-backed AMI",
        );
    }
    if !mounted.is_empty() {
        return Check::fail(
            "ebs",
            format!("instance store is mounted ({}): what is on it is lost at every interruption", mounted.join(", ")),
            "keep /var/lib/etcd, /etc/kubernetes and all state on EBS volumes; unmount the instance store",
        );
    }
    let ebs = n.instance.volumes.len();
    Check::pass("ebs", format!("root and {} data volume(s) on EBS", ebs.saturating_sub(1)))
}

/// Whether EC2 can replace the root volume of an instance of this type:
/// "You can replace the root volume for all virtualized instance types and
/// EC2 Mac bare metal instances. No other bare metal instance types are
/// supported." (EC2 User Guide, "Replace the root volume for an Amazon EC2
/// instance without stopping it", Considerations.)
pub(super) fn root_swap_supported(instance_type: &str) -> bool {
    let (family, size) = instance_type.split_once('.').unwrap_or((instance_type, ""));
    !size.starts_with("metal") || family.starts_with("mac")
}

/// The relaunch swaps the old root volume in with CreateReplaceRootVolumeTask:
/// a bare-metal type it may launch cannot take it.
pub(super) fn bare_metal(n: &NodeFacts, stack: Option<&Stack>) -> Check {
    let listed = stack.map(Stack::instance_types).unwrap_or_default();
    // The relaunch's types: the stack's InstanceTypes, else the node's own.
    let (types, whose) = if listed.is_empty() {
        (vec![n.instance.instance_type.clone()], "the node's own type (the stack's InstanceTypes is empty)")
    } else {
        (listed, "the stack's InstanceTypes")
    };
    let metal: Vec<&str> = types.iter().map(String::as_str).filter(|t| !root_swap_supported(t)).collect();
    if metal.is_empty() {
        return Check::pass(
            "bare-metal",
            format!("a relaunch on {} ({whose}) can take the old root volume back", types.join(", ")),
        );
    }
    Check::warn(
        "bare-metal",
        format!(
            "{} in {whose} is bare metal: EC2 replaces the root volume of virtualized and EC2 Mac bare-metal \
             instances only, so a replacement of that type cannot come back on the old root volume; it keeps \
             the root of the image it was launched from (the data volumes are attached as usual)",
            metal.join(", ")
        ),
        "relaunch on virtualized types: deploy the stack with InstanceTypes listing no *.metal type",
    )
}
