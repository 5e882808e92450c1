//! The cloud as lifeboat needs it: small traits the adapters crate implements
//! with the AWS SDK, and the tests with in-memory fakes.

use crate::model::{CloudError, Image, Instance, Snapshot, Tags};
use std::future::Future;

/// What a backup image is made of: the source instance, the AMI name, and the
/// tags put on the image and on each of its snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub instance_id: String,
    pub name: String,
    pub description: String,
    /// Tags for the image and for its snapshots (one TagSpecification each).
    pub tags: Tags,
}

/// The EC2 operations lifeboat calls.
pub trait Ec2: Send + Sync {
    /// Every instance (any state) that carries the tag key `tag_key`.
    fn instances_with_tag(&self, tag_key: &str) -> impl Future<Output = Result<Vec<Instance>, CloudError>> + Send;

    /// CreateImage with NoReboot and the spec's tags on the image and its
    /// snapshots. Returns the new image id.
    fn create_image(&self, spec: &ImageSpec) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// The image of this account with exactly this name, if any.
    fn image_named(&self, name: &str) -> impl Future<Output = Result<Option<Image>, CloudError>> + Send;

    /// Every image this account owns, tagged or not (a snapshot in use by any
    /// of them must survive a prune).
    fn own_images(&self) -> impl Future<Output = Result<Vec<Image>, CloudError>> + Send;

    /// The snapshots this account owns that carry the tag key `tag_key`.
    fn snapshots_with_tag(&self, tag_key: &str) -> impl Future<Output = Result<Vec<Snapshot>, CloudError>> + Send;

    /// Those of `ids` that still exist (missing ones are simply absent).
    fn snapshots_by_id(&self, ids: &[String]) -> impl Future<Output = Result<Vec<Snapshot>, CloudError>> + Send;

    /// DeregisterImage with DeleteAssociatedSnapshots as asked.
    fn deregister_image(
        &self,
        image_id: &str,
        delete_snapshots: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    fn delete_snapshot(&self, snapshot_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}
