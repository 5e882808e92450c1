//! An in-memory EC2 that behaves as lifeboat relies on AWS behaving (unique
//! AMI names, images `pending` until told otherwise, snapshots that survive
//! while an image uses them, ...), with recorded calls and injectable failures.
//! For flow tests and demos; never used in a Lambda.

use crate::model::{CloudError, Image, ImageState, Instance, InstanceState, Snapshot, SnapshotState, Tags};
use crate::ports::{Ec2, ImageSpec};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default)]
pub struct MemoryCloud {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<String, Instance>,
    images: BTreeMap<String, Image>,
    snapshots: BTreeMap<String, Snapshot>,
    next_id: u64,
    calls: Vec<String>,
    /// Errors to answer the next calls of an operation with, in order.
    faults: BTreeMap<String, VecDeque<CloudError>>,
    now: Option<DateTime<Utc>>,
    /// DeregisterImage leaves the snapshots behind even when asked to delete
    /// them (as AWS does when the caller may not DeleteSnapshot).
    keep_snapshots_on_deregister: bool,
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl MemoryCloud {
    pub fn new() -> MemoryCloud {
        MemoryCloud::default()
    }

    fn id(s: &mut State, prefix: &str) -> String {
        s.next_id += 1;
        format!("{prefix}-{:017x}", s.next_id)
    }

    /// The time stamped on what is created from now on.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.state.lock().unwrap().now = Some(now);
    }

    /// Adds an instance and returns its id.
    pub fn add_instance(&self, state: InstanceState, tag_pairs: &[(&str, &str)]) -> String {
        let mut s = self.state.lock().unwrap();
        let id = Self::id(&mut s, "i");
        let launch_time = s.now;
        s.instances.insert(id.clone(), Instance { id: id.clone(), state, launch_time, tags: tags(tag_pairs) });
        id
    }

    /// Adds an image with one completed snapshot carrying the same tags;
    /// returns (image id, snapshot id).
    pub fn add_image(
        &self,
        name: &str,
        state: ImageState,
        created: Option<DateTime<Utc>>,
        tag_pairs: &[(&str, &str)],
    ) -> (String, String) {
        let mut s = self.state.lock().unwrap();
        let id = Self::id(&mut s, "ami");
        let snapshot = Self::id(&mut s, "snap");
        let tags = tags(tag_pairs);
        s.snapshots.insert(
            snapshot.clone(),
            Snapshot { id: snapshot.clone(), state: SnapshotState::Completed, start_time: created, tags: tags.clone() },
        );
        s.images.insert(
            id.clone(),
            Image {
                id: id.clone(),
                name: name.to_string(),
                state,
                creation_date: created,
                snapshot_ids: vec![snapshot.clone()],
                tags,
            },
        );
        (id, snapshot)
    }

    /// Adds a snapshot no image uses.
    pub fn add_snapshot(
        &self,
        state: SnapshotState,
        started: Option<DateTime<Utc>>,
        tag_pairs: &[(&str, &str)],
    ) -> String {
        let mut s = self.state.lock().unwrap();
        let id = Self::id(&mut s, "snap");
        s.snapshots.insert(id.clone(), Snapshot { id: id.clone(), state, start_time: started, tags: tags(tag_pairs) });
        id
    }

    /// The next `count` calls of `operation` fail with `code`.
    pub fn fail_next(&self, operation: &str, code: &str, count: usize) {
        let mut s = self.state.lock().unwrap();
        let queue = s.faults.entry(operation.to_string()).or_default();
        for _ in 0..count {
            queue.push_back(CloudError::new(operation, Some(code), "injected by MemoryCloud"));
        }
    }

    pub fn keep_snapshots_on_deregister(&self, keep: bool) {
        self.state.lock().unwrap().keep_snapshots_on_deregister = keep;
    }

    pub fn images(&self) -> Vec<Image> {
        self.state.lock().unwrap().images.values().cloned().collect()
    }

    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.state.lock().unwrap().snapshots.values().cloned().collect()
    }

    /// Every call made so far, as `Operation` names.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    fn call(&self, operation: &str) -> Result<MutexGuard<'_, State>, CloudError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(operation.to_string());
        match s.faults.get_mut(operation).and_then(VecDeque::pop_front) {
            Some(err) => Err(err),
            None => Ok(s),
        }
    }
}

impl Ec2 for MemoryCloud {
    async fn instances_with_tag(&self, tag_key: &str) -> Result<Vec<Instance>, CloudError> {
        let s = self.call("DescribeInstances")?;
        Ok(s.instances.values().filter(|i| i.tags.contains_key(tag_key)).cloned().collect())
    }

    async fn create_image(&self, spec: &ImageSpec) -> Result<String, CloudError> {
        let mut s = self.call("CreateImage")?;
        if !s.instances.contains_key(&spec.instance_id) {
            return Err(CloudError::new("CreateImage", Some("InvalidInstanceID.NotFound"), &spec.instance_id));
        }
        if s.images.values().any(|i| i.name == spec.name) {
            return Err(CloudError::new("CreateImage", Some("InvalidAMIName.Duplicate"), &spec.name));
        }
        let id = Self::id(&mut s, "ami");
        let snapshot = Self::id(&mut s, "snap");
        let now = s.now;
        s.snapshots.insert(
            snapshot.clone(),
            Snapshot { id: snapshot.clone(), state: SnapshotState::Pending, start_time: now, tags: spec.tags.clone() },
        );
        let image = Image {
            id: id.clone(),
            name: spec.name.clone(),
            state: ImageState::Pending,
            creation_date: now,
            snapshot_ids: vec![snapshot],
            tags: spec.tags.clone(),
        };
        s.images.insert(id.clone(), image);
        Ok(id)
    }

    async fn image_named(&self, name: &str) -> Result<Option<Image>, CloudError> {
        let s = self.call("DescribeImages")?;
        Ok(s.images.values().find(|i| i.name == name).cloned())
    }

    async fn own_images(&self) -> Result<Vec<Image>, CloudError> {
        let s = self.call("DescribeImages")?;
        Ok(s.images.values().cloned().collect())
    }

    async fn snapshots_with_tag(&self, tag_key: &str) -> Result<Vec<Snapshot>, CloudError> {
        let s = self.call("DescribeSnapshots")?;
        Ok(s.snapshots.values().filter(|x| x.tags.contains_key(tag_key)).cloned().collect())
    }

    async fn snapshots_by_id(&self, ids: &[String]) -> Result<Vec<Snapshot>, CloudError> {
        let s = self.call("DescribeSnapshots")?;
        Ok(ids.iter().filter_map(|id| s.snapshots.get(id).cloned()).collect())
    }

    async fn deregister_image(&self, image_id: &str, delete_snapshots: bool) -> Result<(), CloudError> {
        let mut s = self.call("DeregisterImage")?;
        let Some(image) = s.images.remove(image_id) else {
            return Err(CloudError::new("DeregisterImage", Some("InvalidAMIID.NotFound"), image_id));
        };
        if delete_snapshots && !s.keep_snapshots_on_deregister {
            for snapshot in image.snapshot_ids {
                if !s.images.values().any(|i| i.snapshot_ids.contains(&snapshot)) {
                    s.snapshots.remove(&snapshot);
                }
            }
        }
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), CloudError> {
        let mut s = self.call("DeleteSnapshot")?;
        if s.images.values().any(|i| i.snapshot_ids.iter().any(|x| x == snapshot_id)) {
            return Err(CloudError::new("DeleteSnapshot", Some("InvalidSnapshot.InUse"), snapshot_id));
        }
        match s.snapshots.remove(snapshot_id) {
            Some(_) => Ok(()),
            None => Err(CloudError::new("DeleteSnapshot", Some("InvalidSnapshot.NotFound"), snapshot_id)),
        }
    }
}
