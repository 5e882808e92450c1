//! An in-memory EC2 that behaves as lifeboat relies on AWS behaving (unique
//! AMI names, images `pending` until told otherwise, ...), with recorded calls
//! and injectable failures. For flow tests and demos; never used in a Lambda.

use crate::model::{CloudError, Image, ImageState, Instance, InstanceState, Tags};
use crate::ports::{Ec2, ImageSpec};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct MemoryCloud {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<String, Instance>,
    images: BTreeMap<String, Image>,
    next_id: u64,
    calls: Vec<String>,
    /// Errors to answer the next calls of an operation with, in order.
    faults: BTreeMap<String, VecDeque<CloudError>>,
    now: Option<DateTime<Utc>>,
}

impl MemoryCloud {
    pub fn new() -> MemoryCloud {
        MemoryCloud::default()
    }

    /// Adds an instance and returns its id.
    pub fn add_instance(&self, state: InstanceState, tags: &[(&str, &str)]) -> String {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = format!("i-{:017x}", s.next_id);
        let tags: Tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let launch_time = s.now;
        s.instances.insert(id.clone(), Instance { id: id.clone(), state, launch_time, tags });
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

    pub fn images(&self) -> Vec<Image> {
        self.state.lock().unwrap().images.values().cloned().collect()
    }

    /// Every call made so far, as `Operation` names.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Clears the record of calls.
    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    fn call(&self, operation: &str) -> Result<std::sync::MutexGuard<'_, State>, CloudError> {
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
        s.next_id += 1;
        let id = format!("ami-{:017x}", s.next_id);
        let snapshot = format!("snap-{:017x}", s.next_id);
        let image = Image {
            id: id.clone(),
            name: spec.name.clone(),
            state: ImageState::Pending,
            creation_date: s.now,
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
}
