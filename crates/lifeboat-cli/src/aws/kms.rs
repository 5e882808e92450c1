//! AWS KMS: the keys of the node's volumes, read by preflight.

use super::{Aws, cloud_error};
use crate::ports::{KeyGrant, Keys, KmsKey};
use lifeboat_core::model::{CloudError, ErrorKind};

impl Keys for Aws {
    async fn key(&self, key_id: &str) -> Result<KmsKey, CloudError> {
        let out = self.kms.describe_key().key_id(key_id).send().await.map_err(|e| cloud_error("DescribeKey", e))?;
        let meta = out
            .key_metadata()
            .ok_or_else(|| CloudError::new("DescribeKey", ErrorKind::Other, None, "no KeyMetadata in the answer"))?;
        Ok(KmsKey {
            arn: meta.arn().unwrap_or(key_id).to_string(),
            manager: meta.key_manager().map(|m| m.as_str().to_string()).unwrap_or_default(),
        })
    }

    async fn key_policy(&self, key_id: &str) -> Result<String, CloudError> {
        let out = self
            .kms
            .get_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .send()
            .await
            .map_err(|e| cloud_error("GetKeyPolicy", e))?;
        out.policy()
            .map(str::to_string)
            .ok_or_else(|| CloudError::new("GetKeyPolicy", ErrorKind::Other, None, "no Policy in the answer"))
    }

    async fn grants(&self, key_id: &str) -> Result<Vec<KeyGrant>, CloudError> {
        let mut grants = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .kms
                .list_grants()
                .key_id(key_id)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| cloud_error("ListGrants", e))?;
            grants.extend(out.grants().iter().map(|g| KeyGrant {
                grantee: g.grantee_principal().unwrap_or_default().to_string(),
                operations: g.operations().iter().map(|o| o.as_str().to_string()).collect(),
                constrained: g.constraints().is_some_and(|c| {
                    c.encryption_context_equals().is_some_and(|m| !m.is_empty())
                        || c.encryption_context_subset().is_some_and(|m| !m.is_empty())
                }),
            }));
            match (out.truncated(), out.next_marker()) {
                (true, Some(next)) => marker = Some(next.to_string()),
                _ => return Ok(grants),
            }
        }
    }
}
