//! Configuration from environment variables. Every variable is optional; an
//! invalid value is an error that names the variable, raised at startup before
//! any AWS call.

use std::fmt;

/// The tag that opts an instance in, and that every lifeboat image and
/// snapshot carries: `lifeboat:node=<node name>`.
pub const DEFAULT_NODE_TAG: &str = "lifeboat:node";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `LIFEBOAT_NODE_TAG`: the tag key that names a node.
    pub node_tag: String,
    /// `LIFEBOAT_RETENTION_DAYS`: backups older than this may be pruned.
    pub retention_days: u32,
    /// `LIFEBOAT_KEEP_MIN`: the newest `available` backups of a node that are
    /// kept whatever their age. At least 1.
    pub keep_min: u32,
    /// `LIFEBOAT_DRY_RUN`: plan and report, change nothing.
    pub dry_run: bool,
    /// `LIFEBOAT_INSTANCE_TYPES`: types to try for a relaunch, in order.
    /// Empty means "the old instance's type".
    pub instance_types: Vec<String>,
    /// `LIFEBOAT_CAPACITY`: which purchase options a relaunch may use.
    pub capacity: Capacity,
    /// `LIFEBOAT_NOTIFY_TOPIC_ARN`: SNS topic for notifications.
    pub notify_topic_arn: Option<String>,
    /// `LIFEBOAT_FINAL_BACKUP`: on an interruption, start one last image of
    /// the node before it goes (its snapshots are point-in-time at the call).
    pub final_backup: bool,
    /// `LIFEBOAT_DRILL_SECURITY_GROUP`: the only security group of restore
    /// drill clones (instead of the node's), to cut them off.
    /// Required for a drill: without it the drill refuses (the stack makes
    /// one in VpcId when its DrillSecurityGroup parameter is empty).
    pub drill_security_group: Option<String>,
    /// `LIFEBOAT_DRILL_INSTANCE_PROFILE`: the instance profile of restore
    /// drill clones (its ARN or its name), never the node's: its role can do
    /// only what an SSM managed instance needs. Required for a drill: without
    /// it the drill refuses (the stack makes one and sets it).
    pub drill_instance_profile: Option<String>,
    /// `LIFEBOAT_DRILL_ALLOW_KEEP`: whether a drill may leave its clone
    /// running (`"keep": true`). Off: a kept clone is a full copy of the
    /// cluster and its secrets.
    pub drill_allow_keep: bool,
    /// `AWS_REGION` (Lambda sets it): a drill clone's fence lets HTTPS
    /// through to the region's SSM endpoints, also inside the VPC.
    pub region: Option<String>,
    /// `LIFEBOAT_FINAL_IMAGE_WAIT` (seconds, default 300): when the old
    /// instance's disks cannot be used, how long after its creation the
    /// final image is waited for before the newest backup is used instead.
    /// The final image copies only what changed since the last backup, so
    /// it is usually available within minutes; 300 s is at most about three
    /// minutes of downtime beyond the termination (which comes two minutes
    /// after the warning) for up to a day of state, and keeps the relaunch
    /// within one 15-minute invocation.
    pub final_image_wait: chrono::Duration,
    /// `LIFEBOAT_SSM_DOCUMENTS`: the prefix of the stack's SSM Command
    /// documents (`<prefix>-repair`, `<prefix>-health`); unset: the scripts
    /// are sent with AWS-RunShellScript.
    pub ssm_documents: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_tag: DEFAULT_NODE_TAG.to_string(),
            retention_days: 7,
            keep_min: 3,
            dry_run: false,
            instance_types: Vec::new(),
            capacity: Capacity::SpotThenOnDemand,
            notify_topic_arn: None,
            final_backup: true,
            drill_security_group: None,
            drill_instance_profile: None,
            drill_allow_keep: false,
            region: None,
            final_image_wait: chrono::Duration::seconds(300),
            ssm_documents: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capacity {
    SpotThenOnDemand,
    Spot,
    OnDemand,
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capacity::SpotThenOnDemand => "spot-then-on-demand",
            Capacity::Spot => "spot",
            Capacity::OnDemand => "on-demand",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in
    /// tests). An empty value counts as unset, as CloudFormation passes empty
    /// parameters through as empty strings.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = Config::default();

        if let Some(v) = get("LIFEBOAT_NODE_TAG") {
            config.node_tag = parse_tag_key("LIFEBOAT_NODE_TAG", &v)?;
        }
        if let Some(v) = get("LIFEBOAT_RETENTION_DAYS") {
            config.retention_days = parse_number("LIFEBOAT_RETENTION_DAYS", &v, 0, 36_500)?;
        }
        if let Some(v) = get("LIFEBOAT_KEEP_MIN") {
            config.keep_min = parse_number("LIFEBOAT_KEEP_MIN", &v, 1, 1_000)?;
        }
        if let Some(v) = get("LIFEBOAT_DRY_RUN") {
            config.dry_run = parse_bool("LIFEBOAT_DRY_RUN", &v)?;
        }
        if let Some(v) = get("LIFEBOAT_FINAL_BACKUP") {
            config.final_backup = parse_bool("LIFEBOAT_FINAL_BACKUP", &v)?;
        }
        config.region = get("AWS_REGION");
        if let Some(v) = get("LIFEBOAT_DRILL_ALLOW_KEEP") {
            config.drill_allow_keep = parse_bool("LIFEBOAT_DRILL_ALLOW_KEEP", &v)?;
        }
        if let Some(v) = get("LIFEBOAT_FINAL_IMAGE_WAIT") {
            let seconds = parse_number("LIFEBOAT_FINAL_IMAGE_WAIT", &v, 0, 600)?;
            config.final_image_wait = chrono::Duration::seconds(i64::from(seconds));
        }
        if let Some(v) = get("LIFEBOAT_INSTANCE_TYPES") {
            config.instance_types = parse_instance_types("LIFEBOAT_INSTANCE_TYPES", &v)?;
        }
        if let Some(v) = get("LIFEBOAT_CAPACITY") {
            config.capacity = match v.trim() {
                "spot-then-on-demand" => Capacity::SpotThenOnDemand,
                "spot" => Capacity::Spot,
                "on-demand" => Capacity::OnDemand,
                _ => {
                    return Err(invalid(
                        "LIFEBOAT_CAPACITY",
                        &v,
                        "expected one of spot-then-on-demand, spot, on-demand",
                    ));
                }
            };
        }
        if let Some(v) = get("LIFEBOAT_DRILL_SECURITY_GROUP") {
            let v = v.trim();
            if !(v.starts_with("sg-") && v.len() > 3 && v[3..].chars().all(|c| c.is_ascii_hexdigit())) {
                return Err(invalid("LIFEBOAT_DRILL_SECURITY_GROUP", v, "expected a security group id (sg-...)"));
            }
            config.drill_security_group = Some(v.to_string());
        }
        if let Some(v) = get("LIFEBOAT_DRILL_INSTANCE_PROFILE") {
            config.drill_instance_profile = Some(parse_instance_profile("LIFEBOAT_DRILL_INSTANCE_PROFILE", &v)?);
        }
        if let Some(v) = get("LIFEBOAT_SSM_DOCUMENTS") {
            let v = v.trim();
            // SSM document names: 3 to 128 of letters, digits, _ - . (the
            // longest suffix lifeboat adds is "-repair").
            let valid = (3..=121).contains(&v.len())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                && !v.to_ascii_lowercase().starts_with("aws");
            if !valid {
                return Err(invalid(
                    "LIFEBOAT_SSM_DOCUMENTS",
                    v,
                    "expected an SSM document name prefix: 3 to 121 letters, digits, _ - . (not starting with aws)",
                ));
            }
            config.ssm_documents = Some(v.to_string());
        }
        if let Some(v) = get("LIFEBOAT_NOTIFY_TOPIC_ARN") {
            let v = v.trim();
            if !(v.starts_with("arn:") && v.split(':').nth(2) == Some("sns") && v.split(':').count() == 6) {
                return Err(invalid(
                    "LIFEBOAT_NOTIFY_TOPIC_ARN",
                    v,
                    "expected an SNS topic ARN (arn:<partition>:sns:<region>:<account>:<name>)",
                ));
            }
            config.notify_topic_arn = Some(v.to_string());
        }
        Ok(config)
    }
}

fn invalid(variable: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { variable, value: value.to_string(), reason: reason.into() }
}

fn parse_tag_key(variable: &'static str, v: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    if v.len() > 128 {
        return Err(invalid(variable, v, "a tag key has at most 128 characters"));
    }
    if v.to_ascii_lowercase().starts_with("aws:") {
        return Err(invalid(variable, v, "tag keys starting with aws: are reserved by AWS"));
    }
    if let Some(c) = v.chars().find(|c| !(c.is_alphanumeric() || " +-=._:/@".contains(*c))) {
        return Err(invalid(variable, v, format!("character {c:?} is not allowed in an EC2 tag key")));
    }
    Ok(v.to_string())
}

/// An instance profile's ARN (`arn:<partition>:iam::<account>:instance-profile/<path/><name>`)
/// or its name (IAM: up to 128 of letters, digits and `+=,.@_-`).
fn parse_instance_profile(variable: &'static str, v: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    let name_ok =
        |n: &str| (1..=128).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    let valid = match v.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            matches!(parts.as_slice(), [partition, "iam", "", account, resource]
                if partition.starts_with("aws")
                    && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
                    && resource.strip_prefix("instance-profile/").and_then(|p| p.rsplit('/').next()).is_some_and(name_ok))
        }
        None => name_ok(v),
    };
    if !valid {
        return Err(invalid(
            variable,
            v,
            "expected an instance profile ARN (arn:<partition>:iam::<account>:instance-profile/<name>) or name",
        ));
    }
    Ok(v.to_string())
}

fn parse_number(variable: &'static str, v: &str, min: u32, max: u32) -> Result<u32, ConfigError> {
    match v.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(variable, v, format!("expected a whole number from {min} to {max}"))),
    }
}

fn parse_bool(variable: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(invalid(variable, v, "expected true or false")),
    }
}

/// At most this many types: each is tried spot and on demand, and every
/// attempt has a ClientToken of its own.
const MAX_INSTANCE_TYPES: usize = 20;

fn parse_instance_types(variable: &'static str, v: &str) -> Result<Vec<String>, ConfigError> {
    let types: Vec<String> = v.split(',').map(|t| t.trim().to_string()).collect();
    if types.len() > MAX_INSTANCE_TYPES {
        return Err(invalid(variable, v, format!("at most {MAX_INSTANCE_TYPES} instance types")));
    }
    for t in &types {
        let valid = matches!(t.split_once('.'), Some((family, size))
            if !family.is_empty() && !size.is_empty()
                && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'));
        if !valid {
            return Err(invalid(
                variable,
                v,
                format!("{t:?} is not an instance type (expected a comma-separated list like m6i.large,m5.large)"),
            ));
        }
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.node_tag, "lifeboat:node");
        assert_eq!((c.retention_days, c.keep_min, c.dry_run), (7, 3, false));
        assert_eq!(c.capacity, Capacity::SpotThenOnDemand);
    }

    #[test]
    fn reads_every_variable() {
        let c = config(&[
            ("LIFEBOAT_NODE_TAG", "backup:node"),
            ("LIFEBOAT_RETENTION_DAYS", "14"),
            ("LIFEBOAT_KEEP_MIN", "5"),
            ("LIFEBOAT_DRY_RUN", "TRUE"),
            ("LIFEBOAT_INSTANCE_TYPES", "m6i.large, m5.large"),
            ("LIFEBOAT_CAPACITY", "on-demand"),
            ("LIFEBOAT_NOTIFY_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:lifeboat"),
        ])
        .unwrap();
        assert_eq!(c.node_tag, "backup:node");
        assert_eq!((c.retention_days, c.keep_min, c.dry_run), (14, 5, true));
        assert_eq!(c.instance_types, vec!["m6i.large", "m5.large"]);
        assert_eq!(c.capacity, Capacity::OnDemand);
        assert_eq!(c.notify_topic_arn.as_deref(), Some("arn:aws:sns:eu-west-1:123456789012:lifeboat"));
    }

    #[test]
    fn the_drill_instance_profile_is_an_arn_or_a_name() {
        for value in [
            "arn:aws:iam::123456789012:instance-profile/lifeboat-drill",
            "arn:aws-cn:iam::123456789012:instance-profile/a/b/drill",
            "lifeboat-drill",
        ] {
            assert_eq!(
                config(&[("LIFEBOAT_DRILL_INSTANCE_PROFILE", value)]).unwrap().drill_instance_profile.as_deref(),
                Some(value)
            );
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        assert_eq!(
            config(&[("LIFEBOAT_KEEP_MIN", ""), ("LIFEBOAT_NOTIFY_TOPIC_ARN", " ")]).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("LIFEBOAT_NODE_TAG", "aws:node"),
            ("LIFEBOAT_NODE_TAG", "node{}"),
            ("LIFEBOAT_RETENTION_DAYS", "seven"),
            ("LIFEBOAT_RETENTION_DAYS", "-1"),
            ("LIFEBOAT_KEEP_MIN", "0"),
            ("LIFEBOAT_DRY_RUN", "maybe"),
            ("LIFEBOAT_FINAL_BACKUP", "sometimes"),
            ("LIFEBOAT_DRILL_ALLOW_KEEP", "please"),
            ("LIFEBOAT_FINAL_IMAGE_WAIT", "601"),
            ("LIFEBOAT_SSM_DOCUMENTS", "AWS-RunShellScript"),
            ("LIFEBOAT_SSM_DOCUMENTS", "my stack"),
            ("LIFEBOAT_DRILL_SECURITY_GROUP", "quarantine"),
            ("LIFEBOAT_DRILL_INSTANCE_PROFILE", "arn:aws:iam::123456789012:role/drill"),
            ("LIFEBOAT_DRILL_INSTANCE_PROFILE", "drill profile"),
            ("LIFEBOAT_INSTANCE_TYPES", "m6i.large,,"),
            ("LIFEBOAT_INSTANCE_TYPES", "large"),
            ("LIFEBOAT_CAPACITY", "spot-only"),
            ("LIFEBOAT_NOTIFY_TOPIC_ARN", "lifeboat-topic"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
            assert!(err.to_string().contains(var), "{err}");
        }
    }
}
