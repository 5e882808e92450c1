//! Restore drills: proof, on demand, that the newest backup comes back as a
//! healthy control plane through the very mechanisms a relaunch uses, and
//! without ever touching the live cluster.
//!
//! The clone is launched from the newest available image on a new IP, with
//! the boot guard and a fence that drops all traffic to the live node's
//! addresses from its first instruction, on every boot. Its root is then
//! swapped for a volume made from the image's root snapshot with a
//! root-volume replacement task, as a relaunch swaps in the old root; it is
//! repaired in quarantine (no controllers), released, and checked. Whatever
//! happened, the clone and every volume made for it are removed, unless the
//! deployment allows `keep` and the request asks for it.

use super::failure::Failure;
use super::launch::Launch;
use super::report::{OldInstance, Outcome, StateReport};
use super::source::{launch_devices, newest_available};
use super::wait::{HEALTH_TIMEOUT_SECONDS, REPAIR_TIMEOUT_SECONDS, wait_for};
use super::{Flow, RelaunchCloud, Source};
use crate::model::{ErrorKind, Image, Instance, InstanceState, RootTaskState, Tags, VolumeState};
use crate::node::NodeName;
use crate::ports::{Network, RootSource, Script, Ssm, VolumeRequest};
use crate::spec::LaunchSpec;
use crate::userdata::Fence;
use crate::{tags, userdata};
use std::net::IpAddr;

/// Longer than any invocation (Lambda's 15 minutes): a clone this old is
/// a leftover.
const LEFTOVER_MINUTES: i64 = 20;

/// What isolates a clone from everything live: its own identity and network.
struct Isolation {
    instance_profile: String,
    security_group: String,
}

/// A clone's tags and its volumes': never the node tag, so a clone is never
/// backed up, pruned as a node or taken for a replacement.
fn clone_tags(node: &NodeName, image: &Image) -> (Tags, Tags) {
    let drill_tag = Tags::from([(tags::DRILL_OF.to_string(), node.to_string())]);
    let mut instance_tags = drill_tag.clone();
    instance_tags.insert(tags::NAME.to_string(), format!("{node}-drill"));
    instance_tags.insert(tags::RESTORED_FROM.to_string(), image.id.clone());
    (instance_tags, drill_tag)
}

/// The live node's addresses a clone must never reach.
pub fn fence_addresses(live: Option<&Instance>, spec: &LaunchSpec) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = live
        .into_iter()
        .flat_map(|i| [i.private_ip.as_deref(), i.public_ip.as_deref()])
        .chain([spec.private_ip.as_deref()])
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

impl<E: RelaunchCloud, S: Ssm> Flow<'_, E, S> {
    pub(super) async fn drill(&mut self, node: NodeName, keep: bool) -> Result<(), Failure> {
        self.report.node = Some(node.to_string());
        let isolation = self.drill_isolation()?;
        self.sweep_leftovers(&node).await?;
        let live = self.live_instance(&node).await?;
        self.report.old = live.as_ref().map(|i| OldInstance { id: i.id.clone(), private_ip: i.private_ip.clone() });
        let images = self.ec2.own_images().await?;
        let image = newest_available(&images, &self.config.node_tag, &node)
            .cloned()
            .ok_or(Failure::NoImage { node: node.to_string() })?;
        self.step("image", format!("{} ({})", image.id, image.name));
        self.report.state = Some(StateReport {
            source: Source::Backup,
            image_id: Some(image.id.clone()),
            volumes: Vec::new(),
            as_of: image.creation_date,
            fallback: None,
        });
        let clone = self.launch_clone(&node, live.as_ref(), &image, &isolation).await?;
        let checked = self.check_clone(&clone, &image, &node).await;
        let cleaned = if keep {
            self.ec2
                .tag(std::slice::from_ref(&clone), &Tags::from([(tags::DRILL_KEPT.to_string(), "true".to_string())]))
                .await?;
            self.step("kept", format!("{clone} left running (keep)"));
            Ok(())
        } else {
            self.clean_up(&node, &clone).await
        };
        let result = match (checked, cleaned) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(failed), Ok(())) => Err(failed),
            (Ok(()), Err(cleanup)) => Err(cleanup),
            (Err(failed), Err(cleanup)) => Err(Failure::Cleanup(format!("{failed}; and then {cleanup}"))),
        };
        self.record_on_image(&image.id, result.is_ok()).await;
        if result.is_ok() {
            self.report.outcome = Outcome::DrillPassed;
        }
        result
    }

    /// The image remembers its last drill, for `lifeboat status`; a failure
    /// to tag is logged, not the drill's outcome.
    async fn record_on_image(&mut self, image_id: &str, passed: bool) {
        let record = tags::DrillRecord { passed, at: self.wall_now() };
        let tag = Tags::from([(tags::DRILL.to_string(), record.value())]);
        if let Err(e) = self.ec2.tag(&[image_id.to_string()], &tag).await {
            tracing::warn!(image = image_id, error = %e, "could not record the drill on the image");
        }
    }

    /// The clone's own identity and network, both required: a clone never
    /// runs with the node's instance profile (its credentials) or in the
    /// node's security groups. Checked before any AWS call.
    fn drill_isolation(&self) -> Result<Isolation, Failure> {
        let profile = self.config.drill_instance_profile.clone();
        let group = self.config.drill_security_group.clone();
        match (profile, group) {
            (Some(instance_profile), Some(security_group)) => Ok(Isolation { instance_profile, security_group }),
            (profile, group) => {
                let mut missing = Vec::new();
                if profile.is_none() {
                    missing.push(
                        "no drill instance profile (LIFEBOAT_DRILL_INSTANCE_PROFILE; the stack creates one): \
                         a clone never runs with the node's instance profile",
                    );
                }
                if group.is_none() {
                    missing.push(
                        "no drill security group (LIFEBOAT_DRILL_SECURITY_GROUP): set the stack's DrillSecurityGroup \
                         parameter, or its VpcId parameter so that the stack creates one; a clone never runs in the \
                         node's security groups",
                    );
                }
                Err(Failure::NotConfigured(format!("the drill refuses to launch a clone: {}", missing.join("; "))))
            }
        }
    }

    /// The node's running instance, if any.
    async fn live_instance(&self, node: &NodeName) -> Result<Option<Instance>, Failure> {
        let tagged = self.ec2.instances_with_tag(&self.config.node_tag).await?;
        Ok(tagged
            .into_iter()
            .filter(|i| i.tags.get(&self.config.node_tag).map(String::as_str) == Some(node.as_str()))
            .filter(|i| i.state == InstanceState::Running)
            .max_by_key(|i| i.launch_time))
    }

    /// Launches the clone: a new IP in the node's subnet, the drill's own
    /// security group and instance profile (never the node's), instance
    /// credentials out of reach of its pods (IMDSv2, hop limit 1), guarded
    /// and fenced, every volume deleted with it.
    async fn launch_clone(
        &mut self,
        node: &NodeName,
        live: Option<&Instance>,
        image: &Image,
        isolation: &Isolation,
    ) -> Result<String, Failure> {
        let recorded = LaunchSpec::from_tags(&image.tags);
        let mut spec = match live.and_then(LaunchSpec::from_instance) {
            Some(seen) => seen.completed_by(recorded),
            None => recorded.ok_or(Failure::NoSpec { node: node.to_string(), image: image.id.clone() })?,
        };
        let live_ips = fence_addresses(live, &spec);
        if live_ips.is_empty() {
            return Err(Failure::Drill(format!("no address of node {node} is known: a clone cannot be fenced off it")));
        }
        let blocks = self.ec2.vpc_blocks(&spec.subnet_id).await?;
        let fence = Fence::new(&live_ips, &blocks, self.config.region.as_deref())
            .map_err(|e| Failure::Drill(format!("the clone cannot be fenced in subnet {}: {e}", spec.subnet_id)))?;
        // The stack's IAM allows a launch tagged as a drill only with the
        // drill profile and a hop limit of 1: a container (one hop further)
        // cannot reach the instance's credentials.
        spec.instance_profile_arn = Some(isolation.instance_profile.clone());
        spec.http_put_response_hop_limit = Some(1);
        let network = Network::Address {
            subnet_id: spec.subnet_id.clone(),
            private_ip: None,
            security_group_ids: vec![isolation.security_group.clone()],
        };
        let (instance_tags, drill_tag) = clone_tags(node, image);
        let launch = Launch {
            image_id: image.id.clone(),
            network: network.clone(),
            devices: launch_devices(image, &[], true),
            user_data: userdata::render(None, Some(&fence)),
            tags: instance_tags,
            volume_tags: drill_tag,
            // Unique per drill: a drill never resumes another's clone (each
            // cleans up after itself); attempts differ by their suffix.
            token: format!("drill-{}-{}", image.id, self.wall_now().timestamp_nanos_opt().unwrap_or_default()),
            // The clone's root is swapped as a relaunch swaps the old root.
            root_swap: true,
            spec,
        };
        self.report.replacement = Some(super::Replacement {
            id: String::new(),
            private_ip: None,
            same_ip: None,
            instance_type: None,
            market: None,
            network: Some(network),
        });
        let clone = self.launch(&launch).await?;
        let ips: Vec<String> = live_ips.iter().map(IpAddr::to_string).collect();
        self.step(
            "guarded",
            format!(
                "kubelet held until released; default deny on every boot: {} and the rest of {} dropped, \
                 HTTPS outside the VPC, the resolver {} and instance metadata allowed",
                ips.join(", "),
                blocks.join(", "),
                fence.resolver()
            ),
        );
        Ok(clone.id)
    }

    async fn check_clone(&mut self, clone: &str, image: &Image, node: &NodeName) -> Result<(), Failure> {
        let running = self.wait_running(clone).await?;
        self.swap_clone_root(&running, image).await?;
        let group = self.config.drill_security_group.clone().unwrap_or_default();
        self.wait_online(clone).await.map_err(|e| match e {
            Failure::Timeout { what, seconds, .. } => Failure::Timeout {
                what,
                seconds,
                hint: format!(
                    ": the clone's SSM agent never registered; it needs HTTPS to SSM (egress, or the ssm, \
                     ssmmessages and ec2messages VPC endpoints) from security group {group}"
                ),
            },
            other => other,
        })?;
        let args = vec!["--quarantine".to_string(), "--timeout".to_string(), REPAIR_TIMEOUT_SECONDS.to_string()];
        let (id, state) = self.run_script(clone, Script::Repair, &node.comment("drill-repair"), args).await?;
        self.finish_repair(id, state, "the clone was repaired in quarantine".into())?;
        self.check_isolation()?;
        let args = vec![self.kubernetes_node_name(node), "--timeout".to_string(), HEALTH_TIMEOUT_SECONDS.to_string()];
        let (id, state) = self.run_script(clone, Script::Health, &node.comment("drill-health"), args).await?;
        let (result, verdict) = super::repair_verdict(&state);
        self.report.health = Some(super::CommandReport { command_id: id, state, result });
        verdict.map_err(|e| Failure::Unhealthy(e.to_string()))?;
        self.step("healthy", "apiserver ready, etcd healthy, the node Ready on the clone's address");
        Ok(())
    }

    /// Proven from the clone, not assumed: the repair's `isolation` says
    /// which of the live node's addresses did not answer, and the instance
    /// profile whose credentials the clone's instance metadata serves: the
    /// drill's, or the drill fails.
    fn check_isolation(&mut self) -> Result<(), Failure> {
        let result = self.report.command.as_ref().and_then(|c| c.result.as_ref());
        let isolation = result.map(|r| r["isolation"].clone()).unwrap_or_default();
        let profile = isolation["instance_profile"].as_str().unwrap_or_default().to_string();
        let expected = self.config.drill_instance_profile.clone().unwrap_or_default();
        let name = |p: &str| p.rsplit('/').next().unwrap_or_default().to_string();
        if profile.is_empty() || !(profile == expected || name(&profile) == name(&expected)) {
            return Err(Failure::Drill(format!(
                "the clone's instance credentials are those of {}, not of the drill's instance profile {expected}",
                if profile.is_empty() { "no reported instance profile" } else { &profile }
            )));
        }
        let unreachable: Vec<&str> =
            isolation["live_unreachable"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        self.step(
            "isolated",
            format!("from the clone: {} did not answer; credentials of {profile}", unreachable.join(", ")),
        );
        Ok(())
    }

    /// The Kubernetes node name the health check looks for: the repair's
    /// result names it; the lifeboat node name otherwise.
    fn kubernetes_node_name(&self, node: &NodeName) -> String {
        let named = self.report.command.as_ref().and_then(|c| c.result.as_ref()).and_then(|r| r["node"].as_str());
        named.map(str::to_string).unwrap_or_else(|| node.to_string())
    }

    /// As a relaunch swaps in the old root: a volume made from the image's
    /// root snapshot replaces the clone's root (CreateVolume, then
    /// CreateReplaceRootVolumeTask with its VolumeId).
    async fn swap_clone_root(&mut self, clone: &Instance, image: &Image) -> Result<(), Failure> {
        let (Some(root), Some(zone)) = (image.root(), clone.availability_zone.clone()) else {
            return Err(Failure::Drill(format!("image {} has no root device, or the clone no zone", image.id)));
        };
        let Some(snapshot_id) = root.snapshot_id.clone() else {
            return Err(Failure::Drill(format!("image {} has no root snapshot", image.id)));
        };
        let node = self.report.node.clone().unwrap_or_default();
        let request = VolumeRequest {
            client_token: format!("drill-root-{}", clone.id),
            snapshot_id,
            availability_zone: zone,
            tags: Tags::from([(tags::DRILL_OF.to_string(), node), (tags::INSTANCE.to_string(), clone.id.clone())]),
        };
        let volume = self.ec2.create_volume(&request).await?;
        wait_for(
            "the drill's root volume to be created",
            self.timing.root_swap,
            &self.timing,
            self.deadline,
            || async {
                let found = self.ec2.volumes_by_id(std::slice::from_ref(&volume)).await?;
                Ok(found.into_iter().find(|v| v.state == VolumeState::Available).map(|_| ()))
            },
        )
        .await?;
        let source = RootSource::Volume(volume.clone());
        let task = self.ec2.replace_root_volume(&clone.id, &source, &format!("root-{}", clone.id)).await?;
        let done = self.wait_root_task(&clone.id, &task).await?;
        if done.state != RootTaskState::Succeeded {
            return Err(Failure::Drill(format!("root-volume replacement task {task} ended {:?}", done.state)));
        }
        let root_device = clone.root_device.clone().unwrap_or_default();
        self.ec2.set_delete_on_termination(&clone.id, std::slice::from_ref(&root_device), true).await?;
        self.step(
            "root-swapped",
            format!("{volume} (from {}) is the root (task {task})", root.snapshot_id.as_deref().unwrap_or("?")),
        );
        if let Some(state) = self.report.state.as_mut() {
            state.volumes = vec![volume];
        }
        Ok(())
    }

    /// Terminates the clone and deletes what was made for it and is not
    /// deleted with it.
    async fn clean_up(&mut self, node: &NodeName, clone: &str) -> Result<(), Failure> {
        let mut problems = Vec::new();
        match self.ec2.terminate_instance(clone).await {
            Ok(()) => {}
            Err(e) if e.is(ErrorKind::NotFound) => {}
            Err(e) => problems.push(format!("the clone {clone} could not be terminated: {e}")),
        }
        let volumes = self.ec2.volumes_tagged(tags::INSTANCE, Some(clone)).await?;
        for volume in volumes.iter().filter(|v| v.tags.get(tags::DRILL_OF).map(String::as_str) == Some(node.as_str())) {
            if volume.attached_to.is_some() {
                continue; // its root: deleted with the clone (DeleteOnTermination)
            }
            if let Err(e) = self.ec2.delete_volume(&volume.id).await
                && !e.is(ErrorKind::NotFound)
            {
                problems.push(format!("volume {} could not be deleted: {e}", volume.id));
            }
        }
        if !problems.is_empty() {
            return Err(Failure::Cleanup(problems.join("; ")));
        }
        self.step("cleaned-up", format!("{clone} terminated with its volumes"));
        Ok(())
    }

    /// Clones an earlier drill could not remove (its invocation was killed)
    /// and that were not kept on purpose, with their loose volumes. Only
    /// what is older than any invocation can run, so a drill running at the
    /// same time keeps its own.
    async fn sweep_leftovers(&mut self, node: &NodeName) -> Result<(), Failure> {
        let before = self.now - chrono::Duration::minutes(LEFTOVER_MINUTES);
        let old = |t: Option<chrono::DateTime<chrono::Utc>>| t.is_some_and(|t| t < before);
        let clones = self.ec2.instances_with_tag(tags::DRILL_OF).await?;
        for clone in clones.iter().filter(|c| {
            c.tags.get(tags::DRILL_OF).map(String::as_str) == Some(node.as_str())
                && !c.state.is_gone()
                && !c.tags.contains_key(tags::DRILL_KEPT)
                && old(c.launch_time)
        }) {
            self.ec2.terminate_instance(&clone.id).await?;
            self.step("leftover-removed", format!("{} from an earlier drill terminated", clone.id));
        }
        let loose = self.ec2.volumes_tagged(tags::DRILL_OF, Some(node.as_str())).await?;
        for volume in loose.iter().filter(|v| v.state == VolumeState::Available && old(v.create_time)) {
            match self.ec2.delete_volume(&volume.id).await {
                Ok(()) => self.step("leftover-removed", format!("volume {} from an earlier drill deleted", volume.id)),
                Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InUse) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
