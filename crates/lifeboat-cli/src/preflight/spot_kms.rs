//! Whether EC2 Spot may use the customer managed keys of the node's volumes.
//!
//! The EC2 User Guide, "Service-linked role for Spot Instance requests",
//! section "Grant access to customer managed keys for use with encrypted AMIs
//! and EBS snapshots": a Spot Instance whose AMI or EBS snapshots are
//! encrypted with a customer managed key needs the AWSServiceRoleForEC2Spot
//! role to be allowed that key "so that Amazon EC2 can launch Spot Instances
//! on your behalf". The page grants it with `aws kms create-grant
//! --operations "Decrypt" "Encrypt" "GenerateDataKey"
//! "GenerateDataKeyWithoutPlaintext" "CreateGrant" "DescribeKey"
//! "ReEncryptFrom" "ReEncryptTo"` and says "grants are an alternative to key
//! policies". A relaunch launches from lifeboat's backups, whose snapshots
//! carry the node's keys: preflight reads the key policy and the grants and
//! decides, per operation, whether the role is allowed it.

use crate::ports::KeyGrant;
use serde_json::{Value, json};

pub const SPOT_ROLE_NAME: &str = "AWSServiceRoleForEC2Spot";

/// The operations of the grant the EC2 User Guide gives the role.
pub const SPOT_KEY_OPERATIONS: [&str; 8] = [
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "CreateGrant",
    "DescribeKey",
    "ReEncryptFrom",
    "ReEncryptTo",
];

/// The service-linked role's ARN (its path is the service's:
/// `aws-service-role/spot.amazonaws.com/`).
pub fn spot_role_arn(partition: &str, account: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/aws-service-role/spot.amazonaws.com/{SPOT_ROLE_NAME}")
}

/// The key-policy statement that allows the role the grant's operations.
pub fn statement(role_arn: &str) -> Value {
    json!({
        "Sid": "Allow the EC2 Spot service-linked role to use the key",
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": SPOT_KEY_OPERATIONS.iter().map(|op| format!("kms:{op}")).collect::<Vec<_>>(),
        "Resource": "*",
    })
}

/// The grant the EC2 User Guide documents, for this key.
pub fn grant_command(region: &str, key_arn: &str, role_arn: &str) -> String {
    let ops: Vec<String> = SPOT_KEY_OPERATIONS.iter().map(|op| format!("\"{op}\"")).collect();
    format!(
        "aws kms create-grant --region {region} --key-id {key_arn} --grantee-principal {role_arn} --operations {}",
        ops.join(" ")
    )
}

/// What EC2 Spot's calls on the key look like to the policy.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub role_arn: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    pub key_arn: &'a str,
}

/// How far the key policy and the grants let the role use the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Operations no statement and no grant allows the role.
    pub missing: Vec<&'static str>,
    /// Operations a Deny statement refuses the role.
    pub denied: Vec<&'static str>,
    /// Statements or grants preflight cannot decide for the role (a
    /// condition it does not evaluate, an encryption-context constraint).
    pub undecided: Vec<String>,
    /// Whether a grant allowed an operation the policy did not.
    pub by_grant: bool,
}

#[cfg(test)]
impl Access {
    pub fn allowed(&self) -> bool {
        self.missing.is_empty() && self.denied.is_empty() && self.undecided.is_empty()
    }
}

/// Yes, no, or not decidable here (and why).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
    Maybe(String),
}

impl Answer {
    fn and(self, other: Answer) -> Answer {
        match (self, other) {
            (Answer::No, _) | (_, Answer::No) => Answer::No,
            (Answer::Maybe(why), _) | (_, Answer::Maybe(why)) => Answer::Maybe(why),
            _ => Answer::Yes,
        }
    }

    /// The stronger of two answers for the same question.
    fn or(self, other: Answer) -> Answer {
        match (self, other) {
            (Answer::Yes, _) | (_, Answer::Yes) => Answer::Yes,
            (Answer::Maybe(why), _) | (_, Answer::Maybe(why)) => Answer::Maybe(why),
            _ => Answer::No,
        }
    }
}

/// A string or a list of strings, as policies write both.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect())
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether an ARN names the role: the same account and role name (a
/// principal written without the role's path still names it).
fn names_role(principal: &str, caller: &Caller<'_>) -> bool {
    let parts: Vec<&str> = principal.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, resource] => {
            *account == caller.account
                && resource.starts_with("role/")
                && resource.rsplit('/').next() == Some(SPOT_ROLE_NAME)
        }
        _ => false,
    }
}

fn principal(statement: &Value, caller: &Caller<'_>) -> Answer {
    if statement.get("NotPrincipal").is_some() {
        return Answer::Maybe("a statement with NotPrincipal".into());
    }
    match statement.get("Principal") {
        Some(Value::String(s)) if s == "*" => Answer::Yes,
        Some(Value::Object(m)) => {
            let aws = m.get("AWS").map(strings).unwrap_or_default();
            if aws.iter().any(|p| *p == "*" || names_role(p, caller)) { Answer::Yes } else { Answer::No }
        }
        _ => Answer::No,
    }
}

/// `Action`/`NotAction` (or `Resource`/`NotResource`) against one value.
fn listed(statement: &Value, key: &str, not_key: &str, value: &str, ignore_case: bool) -> bool {
    if let Some(v) = statement.get(key) {
        strings(v).iter().any(|p| glob(p, value, ignore_case))
    } else if let Some(v) = statement.get(not_key) {
        !strings(v).iter().any(|p| glob(p, value, ignore_case))
    } else {
        false
    }
}

/// The value a condition key has when EC2 Spot calls KMS for this
/// operation; `None` when the request has no such key.
fn context_value(key: &str, operation: &str, caller: &Caller<'_>) -> Result<Option<String>, ()> {
    Ok(match key.to_ascii_lowercase().as_str() {
        "kms:calleraccount" | "aws:principalaccount" => Some(caller.account.to_string()),
        "kms:viaservice" => Some(format!("ec2.{}.amazonaws.com", caller.region)),
        "aws:principalarn" => Some(caller.role_arn.to_string()),
        // Present only on grant operations; EC2's grants are for its volumes.
        "kms:grantisforawsresource" => (operation == "CreateGrant").then(|| "true".to_string()),
        _ => return Err(()),
    })
}

/// One condition operator with its keys and values.
fn condition(operator: &str, key: &str, values: &[&str], operation: &str, caller: &Caller<'_>) -> Answer {
    let undecided = || Answer::Maybe(format!("a condition {operator} {key}"));
    let Ok(actual) = context_value(key, operation, caller) else { return undecided() };
    let (base, if_exists) = match operator.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    let Some(actual) = actual else {
        // A key the request lacks: true only for IfExists and the negated
        // operators.
        let negated = base.contains("Not");
        return if if_exists || negated { Answer::Yes } else { Answer::No };
    };
    let holds = match base {
        "StringEquals" | "ArnEquals" => values.iter().any(|v| *v == actual),
        "StringEqualsIgnoreCase" => values.iter().any(|v| v.eq_ignore_ascii_case(&actual)),
        "StringLike" | "ArnLike" => values.iter().any(|v| glob(v, &actual, false)),
        "StringNotEquals" | "ArnNotEquals" => !values.iter().any(|v| *v == actual),
        "StringNotEqualsIgnoreCase" => !values.iter().any(|v| v.eq_ignore_ascii_case(&actual)),
        "StringNotLike" | "ArnNotLike" => !values.iter().any(|v| glob(v, &actual, false)),
        "Bool" => values.iter().any(|v| v.eq_ignore_ascii_case(&actual)),
        _ => return undecided(),
    };
    if holds { Answer::Yes } else { Answer::No }
}

fn conditions(statement: &Value, operation: &str, caller: &Caller<'_>) -> Answer {
    let Some(Value::Object(operators)) = statement.get("Condition") else { return Answer::Yes };
    let mut all = Answer::Yes;
    for (operator, keys) in operators {
        let Value::Object(keys) = keys else { return Answer::Maybe(format!("a condition {operator}")) };
        for (key, values) in keys {
            let values: Vec<String> = match values {
                Value::Bool(b) => vec![b.to_string()],
                Value::Array(a) => a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect(),
                v => vec![v.as_str().map_or_else(|| v.to_string(), str::to_string)],
            };
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            all = all.and(condition(operator, key, &values, operation, caller));
        }
    }
    all
}

/// Whether the statement applies to the role calling this operation on the key.
fn applies(statement: &Value, operation: &str, caller: &Caller<'_>) -> Answer {
    let action = format!("kms:{operation}");
    if !listed(statement, "Action", "NotAction", &action, true)
        || !listed(statement, "Resource", "NotResource", caller.key_arn, false)
    {
        return Answer::No;
    }
    principal(statement, caller).and(conditions(statement, operation, caller))
}

/// Reads the key policy (and, when given, the key's grants) for the role.
pub fn access(policy: &str, grants: Option<&[KeyGrant]>, caller: &Caller<'_>) -> Result<Access, String> {
    let doc: Value = serde_json::from_str(policy).map_err(|e| format!("the key policy is not JSON: {e}"))?;
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => return Err("the key policy has no Statement".into()),
    };
    let mut access = Access::default();
    let mut undecided: Vec<(String, Vec<&str>)> = Vec::new();
    for op in SPOT_KEY_OPERATIONS {
        let mut allow = Answer::No;
        let mut deny = Answer::No;
        for s in &statements {
            let answer = applies(s, op, caller);
            match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => allow = allow.or(answer),
                Some("Deny") => deny = deny.or(answer),
                _ => {}
            }
        }
        if allow != Answer::Yes {
            let granted = grants.unwrap_or_default().iter().filter(|g| names_role(&g.grantee, caller)).fold(
                Answer::No,
                |a, g| {
                    let answer = if !g.operations.iter().any(|o| o == op) {
                        Answer::No
                    } else if g.constrained {
                        Answer::Maybe(format!("a grant to {} with an encryption context constraint", g.grantee))
                    } else {
                        Answer::Yes
                    };
                    a.or(answer)
                },
            );
            if granted == Answer::Yes {
                access.by_grant = true;
            }
            allow = allow.or(granted);
        }
        match (deny, allow) {
            (Answer::Yes, _) => access.denied.push(op),
            (_, Answer::No) => access.missing.push(op),
            (Answer::Maybe(why), _) | (_, Answer::Maybe(why)) => match undecided.iter_mut().find(|(w, _)| *w == why) {
                Some((_, ops)) => ops.push(op),
                None => undecided.push((why, vec![op])),
            },
            (Answer::No, Answer::Yes) => {}
        }
    }
    access.undecided = undecided
        .into_iter()
        .map(|(why, ops)| {
            let ops: Vec<String> = ops.iter().map(|op| format!("kms:{op}")).collect();
            format!("{why} ({})", ops.join(", "))
        })
        .collect();
    Ok(access)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::111122223333:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot";
    const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn caller() -> Caller<'static> {
        Caller { role_arn: ROLE, account: "111122223333", region: "eu-west-1", key_arn: KEY }
    }

    fn policy(statements: Value) -> String {
        json!({"Version": "2012-10-17", "Id": "key-default-1", "Statement": statements}).to_string()
    }

    /// The policy KMS gives a key created without one.
    fn default_statement() -> Value {
        json!({"Sid": "Enable IAM User Permissions", "Effect": "Allow",
               "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"})
    }

    #[test]
    fn the_role_arn_has_the_services_path_in_the_nodes_partition_and_account() {
        assert_eq!(spot_role_arn("aws", "111122223333"), ROLE);
        assert_eq!(
            spot_role_arn("aws-cn", "1"),
            "arn:aws-cn:iam::1:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
        );
    }

    #[test]
    fn the_default_key_policy_leaves_every_operation_to_iam_so_the_role_has_none() {
        let a = access(&policy(json!([default_statement()])), None, &caller()).unwrap();
        assert_eq!(a.missing, SPOT_KEY_OPERATIONS);
        assert!(!a.allowed());
    }

    #[test]
    fn the_printed_statement_allows_every_operation_and_nothing_less_does() {
        let full = statement(ROLE);
        let a = access(&policy(json!([default_statement(), full.clone()])), None, &caller()).unwrap();
        assert!(a.allowed(), "{a:?}");
        for (i, op) in SPOT_KEY_OPERATIONS.iter().enumerate() {
            let mut short = full.clone();
            short["Action"].as_array_mut().unwrap().remove(i);
            let a = access(&policy(json!([short])), None, &caller()).unwrap();
            assert_eq!(a.missing, [*op]);
        }
    }

    #[test]
    fn wildcards_a_path_less_arn_and_a_single_statement_object_count() {
        let s = json!({"Effect": "Allow",
                       "Principal": {"AWS": ["arn:aws:iam::111122223333:role/AWSServiceRoleForEC2Spot"]},
                       "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                                  "kms:CreateGrant", "kms:DescribeKey"],
                       "Resource": KEY});
        let doc = json!({"Version": "2012-10-17", "Statement": s}).to_string();
        assert!(access(&doc, None, &caller()).unwrap().allowed());
    }

    #[test]
    fn another_accounts_role_or_a_service_principal_does_not_count() {
        let mut other = statement(&spot_role_arn("aws", "444455556666"));
        let a = access(&policy(json!([other.clone()])), None, &caller()).unwrap();
        assert_eq!(a.missing.len(), 8);
        other["Principal"] = json!({"Service": "ec2.amazonaws.com"});
        assert_eq!(access(&policy(json!([other])), None, &caller()).unwrap().missing.len(), 8);
    }

    #[test]
    fn the_aws_ebs_key_pattern_everyone_in_the_account_through_ec2_counts() {
        let s = json!({"Effect": "Allow", "Principal": {"AWS": "*"},
                       "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                                  "kms:CreateGrant", "kms:DescribeKey"],
                       "Resource": "*",
                       "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333",
                                                      "kms:ViaService": "ec2.eu-west-1.amazonaws.com"}}});
        assert!(access(&policy(json!([s.clone()])), None, &caller()).unwrap().allowed());
        let mut elsewhere = s;
        elsewhere["Condition"]["StringEquals"]["kms:ViaService"] = json!("rds.eu-west-1.amazonaws.com");
        assert_eq!(access(&policy(json!([elsewhere])), None, &caller()).unwrap().missing.len(), 8);
    }

    #[test]
    fn grant_is_for_aws_resource_holds_for_create_grant_only() {
        let mut use_key = statement(ROLE);
        use_key["Action"] = json!(
            SPOT_KEY_OPERATIONS.iter().filter(|o| **o != "CreateGrant").map(|o| format!("kms:{o}")).collect::<Vec<_>>()
        );
        let grant = json!({"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:*", "Resource": "*",
                           "Condition": {"Bool": {"kms:GrantIsForAWSResource": true}}});
        assert!(access(&policy(json!([use_key.clone(), grant.clone()])), None, &caller()).unwrap().allowed());
        // Alone, the conditional statement allows CreateGrant and nothing else.
        let a = access(&policy(json!([grant])), None, &caller()).unwrap();
        assert_eq!(a.missing.len(), 7);
        assert!(!a.missing.contains(&"CreateGrant"));
    }

    #[test]
    fn a_condition_preflight_cannot_decide_is_undecided_not_allowed() {
        let mut s = statement(ROLE);
        s["Condition"] = json!({"StringEquals": {"aws:SourceVpce": "vpce-1"}});
        let a = access(&policy(json!([s])), None, &caller()).unwrap();
        assert!(a.missing.is_empty() && !a.allowed());
        assert!(a.undecided[0].contains("StringEquals aws:SourceVpce"), "{a:?}");
    }

    #[test]
    fn a_deny_for_the_role_wins() {
        let deny = json!({"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"});
        let a = access(&policy(json!([statement(ROLE), deny])), None, &caller()).unwrap();
        assert_eq!(a.denied, ["Decrypt"]);
    }

    #[test]
    fn the_grant_aws_documents_allows_what_the_policy_does_not() {
        let grant = |ops: &[&str], constrained| KeyGrant {
            grantee: ROLE.into(),
            operations: ops.iter().map(|o| o.to_string()).collect(),
            constrained,
        };
        let default = policy(json!([default_statement()]));
        let a = access(&default, Some(&[grant(&SPOT_KEY_OPERATIONS, false)]), &caller()).unwrap();
        assert!(a.allowed() && a.by_grant, "{a:?}");
        let a = access(&default, Some(&[grant(&SPOT_KEY_OPERATIONS[..7], false)]), &caller()).unwrap();
        assert_eq!(a.missing, ["ReEncryptTo"]);
        let a = access(&default, Some(&[grant(&SPOT_KEY_OPERATIONS, true)]), &caller()).unwrap();
        assert!(!a.allowed() && a.missing.is_empty() && a.undecided[0].contains("encryption context"), "{a:?}");
    }

    #[test]
    fn the_grant_command_is_the_user_guides_for_this_key() {
        assert_eq!(
            grant_command("eu-west-1", KEY, ROLE),
            format!(
                "aws kms create-grant --region eu-west-1 --key-id {KEY} --grantee-principal {ROLE} --operations \
                 \"Decrypt\" \"Encrypt\" \"GenerateDataKey\" \"GenerateDataKeyWithoutPlaintext\" \"CreateGrant\" \
                 \"DescribeKey\" \"ReEncryptFrom\" \"ReEncryptTo\""
            )
        );
    }

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("kms:ReEncrypt*", "kms:ReEncryptFrom", true));
        assert!(glob("KMS:*", "kms:Decrypt", true));
        assert!(glob("ec2.*.amazonaws.com", "ec2.eu-west-1.amazonaws.com", false));
        assert!(!glob("kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", true));
        assert!(glob("kms:?ecrypt", "kms:Decrypt", true));
    }
}
