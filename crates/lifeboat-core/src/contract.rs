//! What lifeboat's code declares about itself for the checks of its
//! deployment, as one JSON document: per function, its ports and the AWS
//! operations they call ([`crate::ports::Port`]) and every tag write it makes
//! ([`crate::tags::writes`]); the SSM commands' budgets and the scripts as
//! they are sent ([`crate::ports::Script::sent_text`]). infra/check_stack.py
//! checks the IAM policies against it (`--manifest`) and
//! infra/sync-repair-document.py writes the SSM documents from it;
//! lifeboat-core's `contract` example prints it. Nothing in infra/ reads
//! Rust source.
//!
//! ```text
//! {"functions": {"interruption-handler": {"ports": ["Describe", ...],
//!   "operations": ["ec2:AttachVolume", ...],
//!   "tag_writes": [{"what": ..., "operation": "CreateTags",
//!   "resource_type": "instance", "keys": [...], "optional_keys": [...], "user_keys": false,
//!   "resource_tag": "lifeboat:node"}, ...]}, ...},
//!  "ssm": {"repair_timeout_seconds": 480, "command_timeout_seconds": 600, "health_timeout_seconds": 120,
//!          "scripts": {"repair": "#!/usr/bin/env bash\n...", "health": ...}},
//!  "permanent_failure_metric": "PermanentFailure"}
//! ```
//!
//! `keys` are written every time, `optional_keys` when their value is known;
//! `user_keys`: the user's own keys of the node's instance come along;
//! `resource_tag` (CreateTags): the tag the resource carries already.

use crate::ports::{Port, Script};
use crate::relaunch::{COMMAND_TIMEOUT_SECONDS, HEALTH_TIMEOUT_SECONDS, REPAIR_TIMEOUT_SECONDS};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Each function and the ports its `handle` is bound by.
pub fn ports() -> [(&'static str, &'static [Port]); 3] {
    [
        ("scheduled-backup", crate::backup::PORTS),
        ("retention-pruner", crate::prune::PORTS),
        ("interruption-handler", crate::relaunch::PORTS),
    ]
}

/// The AWS operations a function's ports call, sorted.
pub fn operations(ports: &[Port]) -> Vec<&'static str> {
    let all: BTreeSet<&'static str> = ports.iter().flat_map(|p| p.operations().iter().copied()).collect();
    all.into_iter().collect()
}

/// The manifest (see the module's documentation).
pub fn manifest() -> Value {
    let writes = crate::tags::writes::by_function();
    let functions: serde_json::Map<String, Value> = ports()
        .into_iter()
        .map(|(function, ports)| {
            let tag_writes: Vec<Value> = writes
                .iter()
                .find(|(f, _)| *f == function)
                .map(|(_, w)| w.iter().map(|w| w.manifest()).collect())
                .unwrap_or_default();
            let names: Vec<&str> = ports.iter().map(|p| p.name()).collect();
            let entry = json!({ "ports": names, "operations": operations(ports), "tag_writes": tag_writes });
            (function.to_string(), entry)
        })
        .collect();
    json!({
        "functions": functions,
        "permanent_failure_metric": crate::answer::PERMANENT_FAILURE,
        "ssm": {
            "repair_timeout_seconds": REPAIR_TIMEOUT_SECONDS,
            "command_timeout_seconds": COMMAND_TIMEOUT_SECONDS,
            "health_timeout_seconds": HEALTH_TIMEOUT_SECONDS,
            "scripts": {
                "repair": Script::Repair.sent_text(),
                "health": Script::Health.sent_text(),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(function: &str) -> Vec<String> {
        let manifest = manifest();
        manifest["functions"][function]["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn each_function_declares_its_own_operations_and_none_of_the_others() {
        let has = |function: &str, op: &str| ops(function).iter().any(|o| o == op);
        for op in
            ["ec2:CreateImage", "ec2:ModifyNetworkInterfaceAttribute", "ec2:ModifyInstanceAttribute", "ec2:CreateTags"]
        {
            assert!(has("scheduled-backup", op), "scheduled-backup: {op} in {:?}", ops("scheduled-backup"));
        }
        for op in ["ec2:RunInstances", "ec2:DeregisterImage", "ec2:DeleteVolume", "ssm:SendCommand"] {
            assert!(!has("scheduled-backup", op), "scheduled-backup never calls {op}");
        }
        for op in ["ec2:DeregisterImage", "ec2:DeleteSnapshot", "ec2:DeleteVolume", "ec2:DescribeSnapshots"] {
            assert!(has("retention-pruner", op), "retention-pruner: {op} in {:?}", ops("retention-pruner"));
        }
        for op in ["ec2:CreateImage", "ec2:CreateTags", "ec2:RunInstances"] {
            assert!(!has("retention-pruner", op), "retention-pruner never calls {op}");
        }
        for op in [
            "ec2:RunInstances",
            "ec2:AttachVolume",
            "ec2:CreateVolume",
            "ec2:CreateReplaceRootVolumeTask",
            "ec2:DescribeReplaceRootVolumeTasks",
            "ec2:TerminateInstances",
            "ec2:DeleteVolume",
            "ssm:SendCommand",
            "ssm:ListCommands",
            "sns:Publish",
        ] {
            assert!(has("interruption-handler", op), "interruption-handler: {op} in {:?}", ops("interruption-handler"));
        }
        for op in ["ec2:DeregisterImage", "ec2:DeleteSnapshot"] {
            assert!(!has("interruption-handler", op), "interruption-handler never calls {op}");
        }
    }

    #[test]
    fn the_manifest_names_each_function_once_with_its_tag_writes_and_the_budgets() {
        let manifest = manifest();
        let functions = manifest["functions"].as_object().unwrap();
        assert_eq!(functions.len(), 3);
        for (function, writes) in crate::tags::writes::by_function() {
            assert_eq!(functions[function]["tag_writes"].as_array().unwrap().len(), writes.len(), "{function}");
        }
        assert_eq!(manifest["ssm"]["repair_timeout_seconds"], REPAIR_TIMEOUT_SECONDS);
    }
}
