//! The checks of the KMS keys that encrypt the node's volumes.

use super::*;

/// The keys of the volumes, where DescribeKey answered.
fn described(n: &NodeFacts) -> impl Iterator<Item = (&KeyFacts, &KmsKey)> {
    n.keys.iter().filter_map(|k| k.key.as_ref().ok().map(|key| (k, key)))
}

pub(super) fn kms(n: &NodeFacts, stack: Option<&Stack>) -> Check {
    let volumes = match &n.volumes {
        Ok(v) => v,
        Err(e) => return Check::warn("kms", format!("could not read the volumes: {e}"), "allow ec2:DescribeVolumes"),
    };
    let keys = stack.map(Stack::kms_keys).unwrap_or_default();
    // An AWS managed key (aws/ebs) needs no place in EbsKmsKeyArns: the
    // stack's grants are for customer managed keys.
    let aws_managed = |id: &str| described(n).any(|(k, key)| k.id == id && !key.is_customer_managed());
    let listed = |id: &str| {
        keys.iter().any(|allowed| allowed == id || described(n).any(|(k, key)| k.id == id && *allowed == key.arn))
    };
    let foreign: Vec<(&str, &str)> = volumes
        .iter()
        .filter(|v| v.encrypted)
        .filter_map(|v| v.kms_key_id.as_deref().map(|k| (v.id.as_str(), k)))
        .filter(|(_, k)| !listed(k) && !aws_managed(k))
        .collect();
    if foreign.is_empty() {
        let encrypted = volumes.iter().filter(|v| v.encrypted).count();
        return Check::pass(
            "kms",
            format!(
                "{} volume(s), {encrypted} encrypted, every key AWS managed or among the stack's EbsKmsKeyArns",
                volumes.len()
            ),
        );
    }
    // Keys DescribeKey did not describe may be AWS managed.
    let unknown = foreign.iter().any(|(_, k)| !described(n).any(|(key, _)| key.id == *k));
    let foreign: Vec<String> = foreign.iter().map(|(v, k)| format!("{v} ({k})")).collect();
    Check::warn(
        "kms",
        format!("encrypted with a key the stack does not list: {}", foreign.join(", ")),
        if unknown {
            "if it is a customer managed key, add its ARN to the stack's EbsKmsKeyArns parameter and redeploy; \
             the AWS-managed aws/ebs key needs nothing (allow kms:DescribeKey for preflight to tell them apart)"
        } else {
            "add its ARN to the stack's EbsKmsKeyArns parameter and redeploy"
        },
    )
}

/// The partition and account of the spot service-linked role: the node's.
fn node_account(n: &NodeFacts, key_arn: &str) -> (String, String) {
    let field = |arn: &str, i: usize| arn.split(':').nth(i).filter(|p| !p.is_empty()).map(str::to_string);
    let profile = n.instance.instance_profile_arn.as_deref().unwrap_or_default();
    let partition = field(key_arn, 1).or_else(|| field(profile, 1)).unwrap_or_else(|| "aws".into());
    let account = n
        .extras
        .as_ref()
        .ok()
        .and_then(|e| e.owner_id.clone())
        .or_else(|| field(profile, 4))
        .or_else(|| field(key_arn, 4))
        .unwrap_or_else(|| "<account>".into());
    (partition, account)
}

/// A spot replacement on volumes under a customer managed key the spot
/// service-linked role may not use is terminated at once (the module
/// `spot_kms` cites the EC2 User Guide): the key policy is the customer's,
/// so preflight reads it.
pub(super) fn spot_kms(n: &NodeFacts, stack: Option<&Stack>, region: &str) -> Check {
    let capacity = stack.map_or(stack::DEFAULT_CAPACITY, Stack::capacity);
    if capacity == "on-demand" {
        return Check::pass(
            "spot-kms",
            "relaunches are on-demand only (CapacityStrategy=on-demand): EC2 Spot uses none of the keys",
        );
    }
    if let Err(e) = &n.volumes {
        return Check::warn("spot-kms", format!("could not read the volumes: {e}"), "allow ec2:DescribeVolumes");
    }
    let mut failed = Vec::new();
    let mut undecided = Vec::new();
    let mut allowed = Vec::new();
    let mut customer = Vec::new();
    for k in &n.keys {
        let volumes = k.volumes.join(", ");
        let key = match &k.key {
            Err(e) => {
                undecided.push(format!("could not tell who manages {} ({volumes}): {e}", k.id));
                customer.push(k.id.clone());
                continue;
            }
            Ok(key) if !key.is_customer_managed() => continue,
            Ok(key) => key,
        };
        customer.push(key.arn.clone());
        let (partition, account) = node_account(n, &key.arn);
        let role = spot_kms::spot_role_arn(&partition, &account);
        let caller = spot_kms::Caller { role_arn: &role, account: &account, region, key_arn: &key.arn };
        let policy = match &k.policy {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                undecided.push(format!("could not read the key policy of {} ({volumes}): {e}", key.arn));
                continue;
            }
            None => {
                undecided.push(format!("the key policy of {} ({volumes}) was not read", key.arn));
                continue;
            }
        };
        let grants = match &k.grants {
            Some(Ok(g)) => Some(g.as_slice()),
            _ => None,
        };
        match spot_kms::access(policy, grants, &caller) {
            Err(e) => undecided.push(format!("{} ({volumes}): {e}", key.arn)),
            Ok(a) if !a.denied.is_empty() => failed.push(format!(
                "the key policy of {} ({volumes}) denies {SPOT_ROLE} {}",
                key.arn,
                kms_actions(&a.denied)
            )),
            Ok(a) if !a.missing.is_empty() => failed.push(format!(
                "neither the key policy nor a grant of {} ({volumes}) allows {SPOT_ROLE} {}",
                key.arn,
                kms_actions(&a.missing)
            )),
            Ok(a) if !a.undecided.is_empty() => undecided.push(format!(
                "{} ({volumes}) allows {SPOT_ROLE} only under {}",
                key.arn,
                a.undecided.join("; ")
            )),
            Ok(a) => allowed.push(format!("{}{}", key.arn, if a.by_grant { " (by a grant)" } else { "" })),
        }
    }
    if customer.is_empty() {
        return Check::pass("spot-kms", "no volume is encrypted with a customer managed key");
    }
    if failed.is_empty() && undecided.is_empty() {
        return Check::pass("spot-kms", format!("{SPOT_ROLE} may use {}", allowed.join(", ")));
    }
    let (partition, account) = node_account(n, customer.first().map(String::as_str).unwrap_or_default());
    let fix = spot_kms_fix(&spot_kms::spot_role_arn(&partition, &account), &customer, region);
    let consequence = "a spot replacement on these volumes would be terminated at once";
    if failed.is_empty() {
        Check::warn(
            "spot-kms",
            format!("{}: if EC2 Spot may not use the key, {consequence}", undecided.join("; ")),
            fix,
        )
    } else {
        failed.extend(undecided);
        Check::fail("spot-kms", format!("{}: {consequence}", failed.join("; ")), fix)
    }
}

const SPOT_ROLE: &str = spot_kms::SPOT_ROLE_NAME;

fn kms_actions(ops: &[&str]) -> String {
    ops.iter().map(|op| format!("kms:{op}")).collect::<Vec<_>>().join(", ")
}

/// The statement to add to each key's policy, and the grant the EC2 User
/// Guide documents instead.
fn spot_kms_fix(role: &str, keys: &[String], region: &str) -> String {
    let statement = serde_json::to_string_pretty(&spot_kms::statement(role)).unwrap_or_default();
    let grants: Vec<String> = keys.iter().map(|k| spot_kms::grant_command(region, k, role)).collect();
    format!(
        "add this statement to the key policy of {} (aws kms get-key-policy --key-id KEY --policy-name default \
         --query Policy --output text > policy.json; add it to Statement; aws kms put-key-policy --key-id KEY \
         --policy-name default --policy file://policy.json):\n{statement}\nor give the role the grant the EC2 User \
         Guide documents:\n{}",
        keys.join(", "),
        grants.join("\n")
    )
}
