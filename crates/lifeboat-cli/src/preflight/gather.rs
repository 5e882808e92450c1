//! Reads what the checks decide on: every call read-only, every failure kept
//! as the fact's error so one missing permission fails one check, not the run.

use super::{DRY_RUN_CALLS, Facts, KeyFacts, NodeFacts, Read};
use super::{dry_run, probe};
use crate::ports::{Functions, Keys, NodeNetwork, Nodes, Probe, Stacks, VolumeCrypto};
use crate::stack;
use lifeboat_core::config::DEFAULT_NODE_TAG;
use lifeboat_core::model::{CloudError, InstanceState};

/// How long the read-only command may take on the node.
pub const PROBE_TIMEOUT_SECONDS: u64 = 90;

/// Everything preflight reads.
pub trait PreflightCloud: Nodes + NodeNetwork + Probe + Stacks + Functions + Keys {}
impl<T: Nodes + NodeNetwork + Probe + Stacks + Functions + Keys> PreflightCloud for T {}

fn read<T>(r: Result<T, CloudError>) -> Read<T> {
    r.map_err(|e| e.to_string())
}

pub async fn gather(cloud: &impl PreflightCloud, node: &str, stack_name: &str, region: &str) -> Facts {
    let stack = read(cloud.stack(stack_name).await);
    let node_tag = match &stack {
        Ok(Some(s)) => s.node_tag(),
        _ => DEFAULT_NODE_TAG.to_string(),
    };
    let mut permissions = Vec::new();
    for op in DRY_RUN_CALLS {
        permissions.push((*op, cloud.dry_run(op).await));
    }
    let instances = read(cloud.instances(&node_tag).await).map(|all| {
        all.into_iter().filter(|i| i.tags.get(&node_tag).map(String::as_str) == Some(node)).collect::<Vec<_>>()
    });
    let running: Vec<_> = instances.iter().flatten().filter(|i| i.state == InstanceState::Running).collect();
    let node_facts = match running.as_slice() {
        [one] => {
            let spot_relaunch = match &stack {
                Ok(Some(s)) => s.capacity() != "on-demand",
                // Unread: the template's default, spot first.
                _ => stack::DEFAULT_CAPACITY != "on-demand",
            };
            let document = match &stack {
                Ok(Some(s)) => s.output(stack::REPAIR_DOCUMENT).map(str::to_string),
                _ => None,
            };
            Some(node_facts(cloud, (*one).clone(), spot_relaunch, document).await)
        }
        _ => None,
    };
    Facts {
        node: node.to_string(),
        region: region.to_string(),
        node_tag,
        permissions,
        instances,
        stack_name: stack_name.to_string(),
        stack,
        concurrency: read(cloud.account_concurrency().await),
        node_facts,
    }
}

async fn node_facts(
    cloud: &impl PreflightCloud,
    instance: lifeboat_core::model::Instance,
    spot_relaunch: bool,
    repair_document: Option<String>,
) -> NodeFacts {
    let extras = read(cloud.instance_extras(&instance.id).await);
    let spot_request = match extras.as_ref().map(|e| e.spot_request_id.clone()) {
        Ok(Some(id)) if instance.spot => read(cloud.spot_request(&id).await),
        Ok(_) => Ok(None),
        Err(e) => Err(e.clone()),
    };
    let ssm_online = read(cloud.is_online(&instance.id).await);
    let probe = match ssm_online {
        Ok(true) => Some(match cloud.run(&instance.id, PROBE_TIMEOUT_SECONDS).await {
            Ok(output) => {
                probe::parse(&output).ok_or_else(|| format!("the command's output is not the check's: {output:?}"))
            }
            Err(e) => Err(e.to_string()),
        }),
        _ => None,
    };
    let dry_run = match (ssm_online.as_ref().ok(), repair_document) {
        (Some(true), Some(document)) => {
            Some(match cloud.repair_dry_run(&instance.id, &document, dry_run::TIMEOUT_SECONDS).await {
                Ok(output) => {
                    dry_run::parse(&output).ok_or_else(|| format!("{document} printed no result line: {output:?}"))
                }
                Err(e) => Err(e.to_string()),
            })
        }
        (Some(true), None) => Some(Err(format!(
            "the stack has no output {} (is it deployed?): its repair document is unknown",
            stack::REPAIR_DOCUMENT
        ))),
        _ => None,
    };
    let elastic_ip = match &instance.primary_interface {
        Some(a) => read(cloud.elastic_ip(&a.interface_id).await),
        None => Ok(None),
    };
    let vpc = extras.as_ref().ok().and_then(|e| e.vpc_id.clone());
    let (routes, endpoints) = match (&instance.subnet_id, vpc) {
        (Some(subnet), Some(vpc)) => (read(cloud.routes(subnet, &vpc).await), read(cloud.vpc_endpoints(&vpc).await)),
        _ => (Err("the instance is in no VPC subnet".to_string()), Err("the instance is in no VPC".to_string())),
    };
    let ids: Vec<String> = instance.volumes.iter().map(|v| v.volume_id.clone()).collect();
    let volumes = read(cloud.volume_crypto(&ids).await);
    let keys = match &volumes {
        Ok(v) => keys(cloud, v, spot_relaunch).await,
        Err(_) => Vec::new(),
    };
    NodeFacts {
        instance,
        extras,
        spot_request,
        ssm_online,
        probe,
        dry_run,
        elastic_ip,
        routes,
        endpoints,
        volumes,
        keys,
    }
}

/// Each key of the encrypted volumes: who manages it (DescribeKey) and, for
/// a customer managed key a spot relaunch would use, its policy and grants.
async fn keys(cloud: &impl PreflightCloud, volumes: &[VolumeCrypto], spot_relaunch: bool) -> Vec<KeyFacts> {
    let mut keys: Vec<KeyFacts> = Vec::new();
    for v in volumes.iter().filter(|v| v.encrypted) {
        let Some(id) = &v.kms_key_id else { continue };
        match keys.iter_mut().find(|k| k.id == *id) {
            Some(k) => k.volumes.push(v.id.clone()),
            None => keys.push(KeyFacts {
                id: id.clone(),
                volumes: vec![v.id.clone()],
                key: Err(String::new()),
                policy: None,
                grants: None,
            }),
        }
    }
    for k in &mut keys {
        k.key = read(cloud.key(&k.id).await);
        if spot_relaunch && k.key.as_ref().is_ok_and(|key| key.is_customer_managed()) {
            k.policy = Some(read(cloud.key_policy(&k.id).await));
            k.grants = Some(read(cloud.grants(&k.id).await));
        }
    }
    keys
}
