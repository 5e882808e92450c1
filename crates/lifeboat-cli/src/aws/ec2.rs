//! EC2 and SSM: the node, its network and spot request, its recovery, and
//! preflight's read-only command.

use super::{Aws, cloud_error};
use crate::ports::{
    Consoles, InstanceExtras, NodeNetwork, Nodes, Permission, Probe, Recovery, Route, SpotRequest, VolumeCrypto,
};
use crate::preflight::dry_run;
use crate::preflight::probe::SCRIPT;
use aws_sdk_ec2::types::Filter;
use aws_sdk_ssm::operation::send_command::builders::SendCommandFluentBuilder;
use lifeboat_core::model::{CloudError, ErrorKind, Image, Instance, Refusal, RootTaskState};
use lifeboat_core::ports::{CommandState, Describe, Launching, Ssm};
use lifeboat_core::tags;
use std::time::Duration;

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.iter().map(|v| v.to_string()).collect())).build()
}

impl Nodes for Aws {
    async fn instances(&self, node_tag: &str) -> Result<Vec<Instance>, CloudError> {
        self.ec2.instances_with_tag(node_tag).await
    }

    async fn images(&self, node_tag: &str) -> Result<Vec<Image>, CloudError> {
        Ok(self.ec2.own_images().await?.into_iter().filter(|i| i.tags.contains_key(node_tag)).collect())
    }
}

impl Consoles for Aws {
    /// The newest output (`Latest`, Nitro types only: "You can optionally
    /// retrieve the latest serial console output at any time during the
    /// instance lifecycle. This option is supported on instance types that use
    /// the Nitro hypervisor", EC2 API reference, GetConsoleOutput); where EC2
    /// refuses `Latest` as invalid or unsupported, the buffered output.
    async fn console_output(&self, instance_id: &str) -> Result<Option<String>, CloudError> {
        let call = |latest: bool| {
            let mut request = self.ec2_client.get_console_output().instance_id(instance_id);
            if latest {
                request = request.latest(true);
            }
            request.send()
        };
        let out = match call(true).await.map_err(|e| cloud_error("GetConsoleOutput", e)) {
            Ok(out) => out,
            // `UnsupportedOperation` (no `Latest` on this instance type) included.
            Err(e) if e.refusal() == Some(Refusal::Validation) => {
                call(false).await.map_err(|e| cloud_error("GetConsoleOutput", e))?
            }
            Err(e) => return Err(e),
        };
        let Some(encoded) = out.output().filter(|o| !o.is_empty()) else { return Ok(None) };
        // "The console output, base64-encoded."
        let bytes = aws_smithy_types::base64::decode(encoded)
            .map_err(|e| CloudError::new("GetConsoleOutput", ErrorKind::Other, None, format!("not base64: {e}")))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

impl NodeNetwork for Aws {
    async fn instance_extras(&self, instance_id: &str) -> Result<InstanceExtras, CloudError> {
        let out = self
            .ec2_client
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| cloud_error("DescribeInstances", e))?;
        let reservation = out.reservations().iter().find(|r| !r.instances().is_empty());
        let i = reservation.and_then(|r| r.instances().first());
        Ok(InstanceExtras {
            owner_id: reservation.and_then(|r| r.owner_id()).map(str::to_string),
            vpc_id: i.and_then(|i| i.vpc_id()).map(str::to_string),
            root_device_type: i.and_then(|i| i.root_device_type()).map(|t| t.as_str().to_string()),
            spot_request_id: i.and_then(|i| i.spot_instance_request_id()).map(str::to_string),
        })
    }

    async fn spot_request(&self, request_id: &str) -> Result<Option<SpotRequest>, CloudError> {
        let out = self
            .ec2_client
            .describe_spot_instance_requests()
            .filters(filter("spot-instance-request-id", &[request_id]))
            .send()
            .await
            .map_err(|e| cloud_error("DescribeSpotInstanceRequests", e))?;
        Ok(out.spot_instance_requests().iter().find_map(|r| {
            Some(SpotRequest {
                id: r.spot_instance_request_id()?.to_string(),
                request_type: r.r#type().map_or("one-time", |t| t.as_str()).to_string(),
                interruption_behavior: r
                    .instance_interruption_behavior()
                    .map_or("terminate", |b| b.as_str())
                    .to_string(),
            })
        }))
    }

    async fn elastic_ip(&self, interface_id: &str) -> Result<Option<String>, CloudError> {
        let out = self
            .ec2_client
            .describe_addresses()
            .filters(filter("network-interface-id", &[interface_id]))
            .send()
            .await
            .map_err(|e| cloud_error("DescribeAddresses", e))?;
        Ok(out.addresses().iter().find_map(|a| a.public_ip().map(str::to_string)))
    }

    async fn routes(&self, subnet_id: &str, vpc_id: &str) -> Result<Vec<Route>, CloudError> {
        // The subnet's own table, else the VPC's main one (EC2's rule).
        let mut tables = Vec::new();
        for filters in [
            vec![filter("association.subnet-id", &[subnet_id])],
            vec![filter("vpc-id", &[vpc_id]), filter("association.main", &["true"])],
        ] {
            let out = self
                .ec2_client
                .describe_route_tables()
                .set_filters(Some(filters))
                .send()
                .await
                .map_err(|e| cloud_error("DescribeRouteTables", e))?;
            tables = out.route_tables().to_vec();
            if !tables.is_empty() {
                break;
            }
        }
        Ok(tables
            .iter()
            .flat_map(|t| t.routes())
            .filter_map(|r| {
                let target = r
                    .gateway_id()
                    .or(r.nat_gateway_id())
                    .or(r.transit_gateway_id())
                    .or(r.network_interface_id())
                    .or(r.vpc_peering_connection_id())
                    .or(r.instance_id())?;
                Some(Route { destination: r.destination_cidr_block()?.to_string(), target: target.to_string() })
            })
            .collect())
    }

    async fn vpc_endpoints(&self, vpc_id: &str) -> Result<Vec<String>, CloudError> {
        let out = self
            .ec2_client
            .describe_vpc_endpoints()
            .filters(filter("vpc-id", &[vpc_id]))
            .send()
            .await
            .map_err(|e| cloud_error("DescribeVpcEndpoints", e))?;
        Ok(out
            .vpc_endpoints()
            .iter()
            .filter(|e| e.state().is_some_and(|s| s.as_str().eq_ignore_ascii_case("available")))
            .filter_map(|e| e.service_name().map(str::to_string))
            .collect())
    }

    async fn volume_crypto(&self, ids: &[String]) -> Result<Vec<VolumeCrypto>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<&str> = ids.iter().map(String::as_str).collect();
        let out = self
            .ec2_client
            .describe_volumes()
            .filters(filter("volume-id", &values))
            .send()
            .await
            .map_err(|e| cloud_error("DescribeVolumes", e))?;
        Ok(out
            .volumes()
            .iter()
            .filter_map(|v| {
                Some(VolumeCrypto {
                    id: v.volume_id()?.to_string(),
                    encrypted: v.encrypted().unwrap_or(false),
                    kms_key_id: v.kms_key_id().map(str::to_string),
                })
            })
            .collect())
    }

    async fn dry_run(&self, operation: &'static str) -> Permission {
        let c = &self.ec2_client;
        let error = match operation {
            "DescribeInstances" => {
                c.describe_instances().dry_run(true).send().await.err().map(|e| cloud_error(operation, e))
            }
            "DescribeImages" => {
                c.describe_images().owners("self").dry_run(true).send().await.err().map(|e| cloud_error(operation, e))
            }
            "DescribeVolumes" => {
                c.describe_volumes().dry_run(true).send().await.err().map(|e| cloud_error(operation, e))
            }
            "DescribeSpotInstanceRequests" => {
                c.describe_spot_instance_requests().dry_run(true).send().await.err().map(|e| cloud_error(operation, e))
            }
            "DescribeAddresses" => {
                c.describe_addresses().dry_run(true).send().await.err().map(|e| cloud_error(operation, e))
            }
            "DescribeRouteTables" => {
                c.describe_route_tables().dry_run(true).send().await.err().map(|e| cloud_error(operation, e))
            }
            "DescribeVpcEndpoints" => {
                c.describe_vpc_endpoints().dry_run(true).send().await.err().map(|e| cloud_error(operation, e))
            }
            other => return Permission::Unknown { message: format!("no DryRun for {other}") },
        };
        permission(error)
    }
}

/// EC2's answer to a DryRun: `DryRunOperation` when the call would have
/// been allowed, `UnauthorizedOperation` when not.
fn permission(error: Option<CloudError>) -> Permission {
    match error {
        None => Permission::Allowed,
        Some(e) if e.is(ErrorKind::DryRunPassed) => Permission::Allowed,
        Some(e) if e.refusal() == Some(Refusal::Authorization) => Permission::Denied { message: e.message },
        Some(e) => Permission::Unknown { message: e.to_string() },
    }
}

impl Probe for Aws {
    async fn is_online(&self, instance_id: &str) -> Result<bool, CloudError> {
        self.ssm.is_online(instance_id).await
    }

    async fn run(&self, instance_id: &str, timeout_seconds: u64) -> Result<String, CloudError> {
        let send = self
            .ssm_client
            .send_command()
            .document_name("AWS-RunShellScript")
            .comment("lifeboat preflight (read-only)")
            .parameters("commands", vec![SCRIPT.to_string()]);
        match self.sent_and_finished(send, instance_id, timeout_seconds).await? {
            CommandState::Success { output } => Ok(output),
            other => Err(not_success(other)),
        }
    }

    async fn repair_dry_run(
        &self,
        instance_id: &str,
        document: &str,
        timeout_seconds: u64,
    ) -> Result<String, CloudError> {
        let send = self
            .ssm_client
            .send_command()
            .document_name(document)
            // The newest version, as interruption-handler sends it.
            .document_version("$LATEST")
            .comment("lifeboat preflight (the repair's dry run)")
            .parameters("args", vec![dry_run::ARGS.to_string()]);
        match self.sent_and_finished(send, instance_id, timeout_seconds).await? {
            CommandState::Success { output } => Ok(output),
            // A refusal of its preflight exits non-zero: its result line says why.
            CommandState::Failed { output, .. } if dry_run::parse(&output).is_some() => Ok(output),
            other => Err(not_success(other)),
        }
    }
}

fn not_success(state: CommandState) -> CloudError {
    let detail = match state {
        CommandState::Failed { ssm_status, output, error, .. } => format!("{ssm_status}: {output}{error}"),
        other => format!("{other:?}"),
    };
    CloudError::new("GetCommandInvocation", ErrorKind::Other, None, detail)
}

impl Aws {
    /// Sends a command to one instance with this executionTimeout, then
    /// waits for it to end.
    async fn sent_and_finished(
        &self,
        send: SendCommandFluentBuilder,
        instance_id: &str,
        timeout_seconds: u64,
    ) -> Result<CommandState, CloudError> {
        let out = send
            .instance_ids(instance_id)
            .parameters("executionTimeout", vec![timeout_seconds.to_string()])
            .send()
            .await
            .map_err(|e| cloud_error("SendCommand", e))?;
        let id = out.command().and_then(|c| c.command_id()).unwrap_or_default().to_string();
        self.finished(&id, instance_id, timeout_seconds).await
    }

    /// Waits (at most `timeout_seconds` and a margin) for a command to end.
    async fn finished(&self, id: &str, instance_id: &str, timeout_seconds: u64) -> Result<CommandState, CloudError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_seconds + 30);
        loop {
            match self.ssm.command_state(id, instance_id).await {
                Ok(CommandState::InProgress) => {}
                Ok(state) => return Ok(state),
                Err(e) if e.is(ErrorKind::NotYetVisible) => {}
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CloudError::new(
                    "GetCommandInvocation",
                    ErrorKind::Other,
                    None,
                    format!("command {id} did not finish"),
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

impl Recovery for Aws {
    async fn replacement(&self, old: &str) -> Result<Option<Instance>, CloudError> {
        let tagged = self.ec2.instances_with_tag(tags::REPLACES).await?;
        Ok(tagged
            .into_iter()
            .filter(|i| i.tags.get(tags::REPLACES).map(String::as_str) == Some(old) && !i.state.is_gone())
            .max_by_key(|i| i.launch_time))
    }

    async fn instance(&self, id: &str) -> Result<Option<Instance>, CloudError> {
        self.ec2.instance(id).await
    }

    async fn root_task(&self, instance_id: &str) -> Result<Option<RootTaskState>, CloudError> {
        Ok(self.ec2.root_tasks(instance_id).await?.into_iter().max_by_key(|t| t.start_time).map(|t| t.state))
    }

    async fn command(&self, instance_id: &str, comment: &str) -> Result<Option<CommandState>, CloudError> {
        let Some(id) = self.ssm.last_command(instance_id, comment).await? else { return Ok(None) };
        match self.ssm.command_state(&id, instance_id).await {
            Ok(state) => Ok(Some(state)),
            Err(e) if e.is(ErrorKind::NotYetVisible) => Ok(Some(CommandState::InProgress)),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_answer_is_a_permission() {
        let e = |code: &str| Some(CloudError::new("DescribeInstances", lifeboat_aws::kind_of(code), Some(code), "m"));
        assert_eq!(permission(e("DryRunOperation")), Permission::Allowed);
        assert_eq!(permission(e("UnauthorizedOperation")), Permission::Denied { message: "m".into() });
        assert!(matches!(permission(e("RequestExpired")), Permission::Unknown { .. }));
    }
}
