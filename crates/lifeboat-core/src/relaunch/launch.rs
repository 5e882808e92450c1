//! Launching the replacement (or a drill's clone): the spec, the network,
//! the capacity plan, exactly once.

use super::failure::Failure;
use super::report::{Attempt, Replacement};
use super::source::{StatePlan, launch_devices};
use super::wait::wait_for;
use super::{Dead, Flow, RelaunchCloud};
use crate::config::{Capacity, Config};
use crate::model::{ErrorKind, Image, Instance, Tags};
use crate::node::NodeName;
use crate::ports::{DeviceOverride, LaunchRequest, Market, Network, Ssm};
use crate::spec::LaunchSpec;
use crate::{tags, userdata};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::time::{Instant, sleep};

/// Whether an instance of this type can have its root volume replaced
/// while it runs: "You can replace the root volume for all virtualized
/// instance types and Amazon EC2 Mac metal instances only. All other metal
/// instances are not supported." (EC2 user guide, replace-root.html,
/// "Considerations"). Metal sizes are `metal` and `metal-<n>xl`.
pub fn can_replace_root(instance_type: &str) -> bool {
    let (family, size) = instance_type.split_once('.').unwrap_or((instance_type, ""));
    !size.starts_with("metal") || family.starts_with("mac")
}

/// The (instance type, market) pairs to try, in order. When the replacement
/// must have its root swapped (`root_swap`: the state comes from the old
/// volumes, or a drill), the types that cannot replace a root are left out.
pub fn launch_plan(old_type: &str, config: &Config, root_swap: bool) -> Vec<(String, Market)> {
    let types: Vec<String> =
        if config.instance_types.is_empty() { vec![old_type.to_string()] } else { config.instance_types.clone() };
    let types: Vec<String> = types.into_iter().filter(|t| !root_swap || can_replace_root(t)).collect();
    let markets: &[Market] = match config.capacity {
        Capacity::SpotThenOnDemand => &[Market::Spot, Market::OnDemand],
        Capacity::Spot => &[Market::Spot],
        Capacity::OnDemand => &[Market::OnDemand],
    };
    markets.iter().flat_map(|m| types.iter().map(move |t| (t.clone(), *m))).collect()
}

/// The ClientToken of one launch attempt: `<base>-<attempt>`, where the base
/// names the generation being replaced (the lost instance's id) or the
/// drill. Unique per attempt and generation, the same on every retry of
/// it, and never cut: EC2 takes at most 64 ASCII characters.
pub fn client_token(base: &str, attempt: usize) -> String {
    let token = format!("{base}-{attempt}");
    assert!(token.len() <= 64 && token.is_ascii(), "client token {token:?} does not fit EC2's 64 characters");
    token
}

/// The replacement's tags: the old instance's own (not `aws:*`, not an older
/// generation's lifeboat markers) plus what it replaces, where it comes from
/// and the state it comes back with.
pub fn replacement_tags(
    old: Option<&Instance>,
    old_id: &str,
    node_tag: &str,
    node: &NodeName,
    plan: &StatePlan,
) -> Tags {
    let mut tags: Tags = old
        .map(|o| {
            o.tags
                .iter()
                .filter(|(k, _)| !k.starts_with("aws:") && !tags::is_generation_marker(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    tags.insert(node_tag.to_string(), node.to_string());
    tags.entry(tags::NAME.to_string()).or_insert_with(|| node.to_string());
    tags.insert(tags::REPLACES.to_string(), old_id.to_string());
    tags.insert(tags::RESTORED_FROM.to_string(), plan.image.id.clone());
    tags.insert(tags::STATE_SOURCE.to_string(), plan.source.as_str().to_string());
    if let Some(as_of) = plan.as_of {
        tags.insert(tags::STATE_AS_OF.to_string(), as_of.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    if let Some(disks) = &plan.disks {
        tags.insert(tags::ROOT_VOLUME.to_string(), disks.root.id.clone());
    }
    tags
}

/// What the boot guard needs to release kubelet by itself: only when the
/// state is the old instance's own volumes (no time passed, nothing to
/// repair) and the replacement's address is known before it runs (the kept
/// interface, or the old address). A fallback to an image stays held for
/// the repair, which checks what the image brings back.
pub fn self_release(plan: &StatePlan, private_ip: Option<&str>) -> Option<userdata::SelfRelease> {
    let disks = plan.disks.as_ref()?;
    let ip = private_ip?.parse().ok()?;
    let data: Vec<(String, String)> =
        disks.data.iter().filter_map(|v| Some((v.id.clone(), v.tags.get(tags::DEVICE)?.clone()))).collect();
    match userdata::SelfRelease::new(&disks.root.id, &data, ip) {
        Ok(release) => Some(release),
        Err(e) => {
            tracing::warn!(error = %e, "the boot guard cannot release itself: held for the repair");
            None
        }
    }
}

/// The address the replacement will have: the kept interface's (the old
/// one), or the one asked of a new interface.
fn launch_ip<'a>(spec: &'a LaunchSpec, network: &'a Network) -> Option<&'a str> {
    match network {
        Network::Interface(_) => spec.private_ip.as_deref(),
        Network::Address { private_ip, .. } => private_ip.as_deref(),
    }
}

/// What one launch (with its fallbacks) is made of.
pub(super) struct Launch {
    pub spec: LaunchSpec,
    pub image_id: String,
    pub network: Network,
    pub devices: Vec<DeviceOverride>,
    pub user_data: String,
    pub tags: Tags,
    pub volume_tags: Tags,
    /// The ClientToken base (see [`client_token`]).
    pub token: String,
    /// Its root is swapped after the launch: only types that allow it.
    pub root_swap: bool,
}

impl Launch {
    /// An on-demand launch after every spot pool refused is tagged so (see
    /// [`fallback_tags`]): a node's replacement, not a drill's clone.
    fn records_fallback(&self) -> bool {
        !self.tags.contains_key(tags::DRILL_OF)
    }
}

/// EC2 tag values hold at most 256 characters.
const MAX_TAG_VALUE: usize = 256;

/// The tags of a replacement launched on-demand because the spot pools in
/// `refused` (`<type> <why>` each) refused it: when, and why.
pub fn fallback_tags(at: DateTime<Utc>, refused: &[String]) -> Tags {
    let mut why = refused.join(", ");
    if why.chars().count() > MAX_TAG_VALUE {
        why = why.chars().take(MAX_TAG_VALUE - 1).chain(['…']).collect();
    }
    Tags::from([
        (tags::MARKET_FALLBACK.to_string(), at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        (tags::MARKET_FALLBACK_REASON.to_string(), why),
    ])
}

/// What became of the old instance's kept interface.
enum Free {
    Available,
    Gone,
    TakenBy(String),
}

/// The network a replacement gets, or the replacement that already has it.
enum Route {
    Launch(Network),
    /// A concurrent invocation launched this replacement on the interface.
    TakenBy(String),
}

impl<E: RelaunchCloud, S: Ssm> Flow<'_, E, S> {
    /// The spec to launch with: the old instance's, completed by what the
    /// image recorded (EC2 no longer describes a terminated instance's
    /// network, volumes or instance profile).
    pub(super) fn launch_spec(&self, dead: &Dead, image: &Image) -> Result<LaunchSpec, Failure> {
        let recorded = LaunchSpec::from_tags(&image.tags);
        match dead.instance.as_ref().and_then(LaunchSpec::from_instance) {
            Some(seen) => Ok(seen.completed_by(recorded)),
            None => recorded.ok_or(Failure::NoSpec { node: dead.node.to_string(), image: image.id.clone() }),
        }
    }

    /// Launches the replacement on the kept interface (or the old address)
    /// from the chosen image, guarded, with the devices the old volumes take
    /// left out. Returns its id.
    pub(super) async fn launch_replacement(&mut self, dead: &Dead, plan: &StatePlan) -> Result<String, Failure> {
        let spec = self.launch_spec(dead, &plan.image)?;
        if self.report.old.as_ref().is_some_and(|o| o.private_ip.is_none())
            && let Some(old) = self.report.old.as_mut()
        {
            old.private_ip = spec.private_ip.clone();
        }
        let network = match self.network(&spec, &dead.id).await? {
            Route::Launch(network) => network,
            Route::TakenBy(replacement) => return Ok(self.resume_taken(replacement)),
        };
        let taken: Vec<String> =
            plan.disks.iter().flat_map(|d| d.data.iter()).filter_map(|v| v.tags.get(tags::DEVICE).cloned()).collect();
        let release = self_release(plan, launch_ip(&spec, &network));
        let launch = Launch {
            image_id: plan.image.id.clone(),
            network,
            // The replacement is the node now: its disks are kept from the start.
            devices: launch_devices(&plan.image, &taken, false),
            user_data: userdata::render(release.as_ref(), None),
            tags: replacement_tags(dead.instance.as_ref(), &dead.id, &self.config.node_tag, &dead.node, plan),
            volume_tags: Tags::from([(self.config.node_tag.clone(), dead.node.to_string())]),
            token: dead.id.clone(),
            root_swap: plan.disks.is_some(),
            spec,
        };
        let instance = self.launch(&launch).await?;
        Ok(instance.id)
    }

    fn resume_taken(&mut self, replacement: String) -> String {
        self.step("replacement-found", format!("{replacement} took the kept interface: resuming"));
        self.report.outcome = super::Outcome::Resumed;
        replacement
    }

    /// The replacement's network: the kept interface once it is free, or a
    /// new interface on the old address; or the replacement a concurrent
    /// invocation launched on the interface.
    async fn network(&mut self, spec: &LaunchSpec, old_id: &str) -> Result<Route, Failure> {
        let address = || Network::Address {
            subnet_id: spec.subnet_id.clone(),
            private_ip: spec.private_ip.clone(),
            security_group_ids: spec.security_group_ids.clone(),
        };
        let Some(eni) = spec.interface_id.clone() else { return Ok(Route::Launch(self.record_network(address()))) };
        let free =
            wait_for("the kept interface to be free", self.timing.release, &self.timing, self.deadline, || async {
                Ok(match self.ec2.network_interface(&eni).await? {
                    None => Some(Free::Gone),
                    Some(i) if i.status == "available" => Some(Free::Available),
                    // Still on the old instance, or already on the replacement
                    // a concurrent invocation launched.
                    Some(_) => self.replacement_of(old_id).await?.map(|r| Free::TakenBy(r.id)),
                })
            })
            .await?;
        Ok(match free {
            Free::Available => Route::Launch(self.record_network(Network::Interface(eni))),
            Free::Gone => {
                self.step("interface", format!("{eni} is gone: a new interface with the old address"));
                Route::Launch(self.record_network(address()))
            }
            Free::TakenBy(replacement) => Route::TakenBy(replacement),
        })
    }

    fn record_network(&mut self, network: Network) -> Network {
        self.report.replacement = Some(Replacement {
            id: String::new(),
            private_ip: None,
            same_ip: None,
            instance_type: None,
            market: None,
            network: Some(network.clone()),
        });
        network
    }

    /// The live replacement of `old_id`, if any.
    pub(super) async fn replacement_of(&self, old_id: &str) -> Result<Option<Instance>, crate::model::CloudError> {
        let tagged = self.ec2.instances_with_tag(tags::REPLACES).await?;
        Ok(tagged
            .into_iter()
            .find(|i| i.tags.get(tags::REPLACES).map(String::as_str) == Some(old_id) && !i.state.is_gone()))
    }

    /// RunInstances through the capacity plan: the next type or market on a
    /// capacity error, or when EC2 ends the instance during its launch; the
    /// same attempt again while the old address or interface is still being
    /// released; the instance the token already made when a retry's
    /// parameters differ; a failure on anything else. Returns the instance
    /// once it runs.
    pub(super) async fn launch(&mut self, launch: &Launch) -> Result<Instance, Failure> {
        let node = self.report.node.clone().unwrap_or_default();
        let plan = launch_plan(&launch.spec.instance_type, self.config, launch.root_swap);
        let left_out: Vec<String> = launch_plan(&launch.spec.instance_type, self.config, false)
            .into_iter()
            .filter(|pool| !plan.contains(pool))
            .map(|(t, m)| format!("{t} {m:?}"))
            .collect();
        if !left_out.is_empty() {
            self.step(
                "capacity-plan",
                format!("{} left out: bare metal cannot replace its root volume", left_out.join(", ")),
            );
        }
        // The spot pools this launch found refusing, as `<type> <why>`.
        let mut refused_spot: Vec<String> = Vec::new();
        for (attempt, (instance_type, market)) in plan.into_iter().enumerate() {
            if let Some((_, _, lost)) = self.dead_pools.iter().find(|(t, m, _)| *t == instance_type && *m == market) {
                self.step("pool-skipped", format!("{instance_type} {market:?}: {lost} was terminated at launch there"));
                if market == Market::Spot {
                    refused_spot.push(format!("{instance_type} terminated at launch"));
                }
                continue;
            }
            let mut tags = launch.tags.clone();
            if launch.records_fallback() && market == Market::OnDemand && !refused_spot.is_empty() {
                tags.extend(fallback_tags(self.wall_now(), &refused_spot));
            }
            let request = LaunchRequest {
                client_token: client_token(&launch.token, attempt),
                image_id: launch.image_id.clone(),
                instance_type: instance_type.clone(),
                market,
                network: launch.network.clone(),
                key_name: launch.spec.key_name.clone(),
                instance_profile_arn: launch.spec.instance_profile_arn.clone(),
                // IMDSv2 only, whatever the old instance allowed: the repair
                // reads the instance's address through it, and the stack's
                // IAM refuses launches that would allow IMDSv1.
                http_tokens: Some("required".into()),
                http_put_response_hop_limit: launch.spec.http_put_response_hop_limit,
                devices: launch.devices.clone(),
                user_data: launch.user_data.clone(),
                tags,
                volume_tags: launch.volume_tags.clone(),
            };
            match self.run_instance(&request).await {
                Ok(instance) => {
                    self.step("launched", format!("{} as {instance_type} {market:?}, guarded", instance.id));
                    if let Some(replacement) = self.report.replacement.as_mut() {
                        replacement.id = instance.id.clone();
                    }
                    match self.wait_launched(&instance.id).await? {
                        Ok(running) => return Ok(running),
                        // Ended before it ran: this pool cannot run it (say,
                        // a spot launch whose volumes use a KMS key the spot
                        // service may not use). The next pool has the next
                        // attempt's token.
                        Err(gone) => {
                            self.terminated_at_launch(&gone);
                            if market == Market::Spot {
                                refused_spot.push(format!("{instance_type} terminated at launch"));
                            }
                        }
                    }
                }
                Err(Failure::Cloud(e)) if e.is(ErrorKind::NoCapacity) => {
                    self.step("no-capacity", format!("{instance_type} {market:?}: {e}"));
                    if market == Market::Spot {
                        refused_spot.push(format!("{instance_type} {}", e.code.as_deref().unwrap_or("no capacity")));
                    }
                    self.report.launch_attempts.push(Attempt { instance_type, market, error: e.to_string() });
                }
                Err(e) => return Err(e),
            }
        }
        Err(Failure::NoCapacity { node, capacity: self.config.capacity.to_string() })
    }

    /// An instance EC2 ended during its launch: its pool (type and market)
    /// is dead for this relaunch, recorded (once) as a refused launch attempt.
    pub(super) fn terminated_at_launch(&mut self, gone: &Instance) {
        let market = if gone.spot { Market::Spot } else { Market::OnDemand };
        if self.dead_pools.iter().any(|(t, m, _)| *t == gone.instance_type && *m == market) {
            return;
        }
        let why = gone.state_reason.as_ref().map_or_else(|| format!("it is {}", gone.state), |r| r.message.clone());
        let error = format!("{} was terminated at launch: {why}", gone.id);
        self.step("terminated-at-launch", format!("{} {market:?}: {error}", gone.instance_type));
        self.report.launch_attempts.push(Attempt { instance_type: gone.instance_type.clone(), market, error });
        self.dead_pools.push((gone.instance_type.clone(), market, gone.id.clone()));
    }

    /// One RunInstances, retried while the address is still in use, and
    /// resolved through its token when EC2 says the token was used.
    async fn run_instance(&mut self, request: &LaunchRequest) -> Result<Instance, Failure> {
        let started = Instant::now();
        loop {
            match self.ec2.run_instance(request).await {
                Ok(instance) => return Ok(instance),
                Err(e) if e.is(ErrorKind::InUse) && started.elapsed() < self.timing.release => {
                    self.step("address-in-use", e.to_string());
                    sleep(self.timing.max_poll).await;
                }
                Err(e) if e.is(ErrorKind::AlreadyExists) => {
                    let Some(instance) = self.ec2.instance_by_client_token(&request.client_token).await? else {
                        return Err(e.into());
                    };
                    // One ended at its launch is a dead pool, not a failure.
                    if instance.state.is_gone() && instance.launch_failure().is_none() {
                        return Err(Failure::TokenTaken {
                            token: request.client_token.clone(),
                            instance: instance.id,
                            state: instance.state.to_string(),
                        });
                    }
                    self.step(
                        "launched-before",
                        format!("{} was launched with token {} before", instance.id, request.client_token),
                    );
                    return Ok(instance);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The replacement's address, type and market, once it runs.
    pub(super) fn record_running(&mut self, running: &Instance) {
        let old_ip = self.report.old.as_ref().and_then(|o| o.private_ip.clone());
        let network = self.report.replacement.as_ref().and_then(|r| r.network.clone());
        self.report.replacement = Some(Replacement {
            id: running.id.clone(),
            private_ip: running.private_ip.clone(),
            same_ip: match (&old_ip, &running.private_ip) {
                (Some(old), Some(new)) => Some(old == new),
                _ => None,
            },
            instance_type: Some(running.instance_type.clone()),
            market: Some(if running.spot { Market::Spot } else { Market::OnDemand }),
            network,
        });
    }
}
