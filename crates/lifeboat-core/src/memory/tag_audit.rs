//! The in-memory cloud checks every tag write it receives against
//! [`crate::tags::writes`], the table infra/check_stack.py checks the IAM
//! policies against, and panics on one the table does not declare: a flow
//! test that passes took only declared writes. The node tag is the default
//! one, as the stack deploys it.

use super::State;
use crate::model::Tags;
use crate::ports::{ImageSpec, LaunchRequest, VolumeRequest};
use crate::tags::writes::{self, Operation, Resource};

fn check(operation: Operation, resource: Resource, target: &str, tags: &Tags, carried: &Tags) {
    if writes::declaration(operation, resource, tags, carried).is_none() {
        let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
        let carried: Vec<&str> = carried.keys().map(String::as_str).collect();
        panic!(
            "undeclared tag write: {operation:?} on {resource:?} {target} with the keys {keys:?} (it carries {carried:?}); \
             declare it in lifeboat_core::tags::writes, and let the function's IAM policy allow it"
        );
    }
}

/// CreateTags: each resource by its type and the tags it carries now
/// (an unknown id is the call's own NotFound).
pub(super) fn create_tags(s: &State, resource_ids: &[String], tags: &Tags) {
    for id in resource_ids {
        let (resource, carried) = if let Some(m) = s.instances.get(id) {
            (Resource::Instance, &m.instance.tags)
        } else if let Some(v) = s.volumes.get(id) {
            (Resource::Volume, &v.tags)
        } else if let Some(i) = s.images.get(id) {
            (Resource::Image, &i.tags)
        } else if let Some(n) = s.interfaces.get(id) {
            (Resource::NetworkInterface, &n.tags)
        } else if let Some(x) = s.snapshots.get(id) {
            (Resource::Snapshot, &x.tags)
        } else {
            continue;
        };
        check(Operation::CreateTags, resource, id, tags, carried);
    }
}

/// CreateImage: the image's tags (with the launch spec), the snapshots'.
pub(super) fn create_image(spec: &ImageSpec) {
    let image: Tags = spec.tags.iter().chain(&spec.image_tags).map(|(k, v)| (k.clone(), v.clone())).collect();
    check(Operation::CreateImage, Resource::Image, &spec.name, &image, &Tags::new());
    check(Operation::CreateImage, Resource::Snapshot, &spec.name, &spec.tags, &Tags::new());
}

/// RunInstances: the instance's tags, its volumes'.
pub(super) fn run_instances(request: &LaunchRequest) {
    let target = &request.client_token;
    check(Operation::RunInstances, Resource::Instance, target, &request.tags, &Tags::new());
    check(Operation::RunInstances, Resource::Volume, target, &request.volume_tags, &Tags::new());
    if matches!(request.network, crate::ports::Network::Address { .. }) {
        check(Operation::RunInstances, Resource::NetworkInterface, target, &request.volume_tags, &Tags::new());
    }
}

/// CreateVolume.
pub(super) fn create_volume(request: &VolumeRequest) {
    check(Operation::CreateVolume, Resource::Volume, &request.client_token, &request.tags, &Tags::new());
}

#[cfg(test)]
mod tests {
    use crate::memory::MemoryCloud;
    use crate::model::{ImageState, InstanceState, Tags};
    use crate::ports::{Launching, Preparing, VolumeRequest};

    fn tag(key: &str, value: &str) -> Tags {
        Tags::from([(key.to_string(), value.to_string())])
    }

    #[tokio::test]
    async fn a_declared_tag_write_goes_through() {
        let cloud = MemoryCloud::new();
        let (image, _) = cloud.add_image("n-1", ImageState::Available, None, &[("lifeboat:node", "n")]);
        cloud.tag(std::slice::from_ref(&image), &tag("lifeboat:drill", "passed")).await.unwrap();
        let clone = cloud.add_instance(InstanceState::Running, &[("lifeboat:drill-of", "n")]);
        cloud.tag(std::slice::from_ref(&clone), &tag("lifeboat:drill-kept", "true")).await.unwrap();
    }

    #[tokio::test]
    #[should_panic(expected = "undeclared tag write: CreateTags on Image")]
    async fn a_key_no_declaration_has_is_refused() {
        let cloud = MemoryCloud::new();
        let (image, _) = cloud.add_image("n-1", ImageState::Available, None, &[("lifeboat:node", "n")]);
        let mut tags = tag("lifeboat:drill", "passed");
        tags.insert("lifeboat:kind".into(), "scheduled".into());
        let _ = cloud.tag(std::slice::from_ref(&image), &tags).await;
    }

    #[tokio::test]
    #[should_panic(expected = "undeclared tag write: CreateTags on Instance")]
    async fn a_declared_key_on_a_resource_without_the_tag_it_must_carry_is_refused() {
        let cloud = MemoryCloud::new();
        // lifeboat:drill-kept is declared on a clone (lifeboat:drill-of), not on a node.
        let node = cloud.add_instance(InstanceState::Running, &[("lifeboat:node", "n")]);
        let _ = cloud.tag(std::slice::from_ref(&node), &tag("lifeboat:drill-kept", "true")).await;
    }

    #[tokio::test]
    #[should_panic(expected = "undeclared tag write: CreateVolume on Volume")]
    async fn tags_at_creation_without_a_key_always_written_are_refused() {
        let cloud = MemoryCloud::new();
        let snapshot = cloud.add_snapshot(crate::model::SnapshotState::Completed, None, &[("lifeboat:node", "n")]);
        // A drill's volume always names its clone (lifeboat:instance) too.
        let request = VolumeRequest {
            client_token: "drill-root".into(),
            snapshot_id: snapshot,
            availability_zone: crate::memory::ZONE.into(),
            tags: tag("lifeboat:drill-of", "n"),
        };
        let _ = cloud.create_volume(&request).await;
    }
}
