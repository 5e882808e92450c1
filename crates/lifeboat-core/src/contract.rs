//! What lifeboat's code declares about itself for the checks of its
//! deployment, as one JSON document: per function, every tag write it makes
//! ([`crate::tags::writes`]). infra/check_stack.py checks the IAM policies
//! against it (`--manifest`); lifeboat-core's `contract` example prints it.
//!
//! ```text
//! {"functions": {"interruption-handler": {"tag_writes": [{"what": ..., "operation": "CreateTags",
//!   "resource_type": "instance", "keys": [...], "optional_keys": [...], "user_keys": false,
//!   "resource_tag": "lifeboat:node"}, ...]}, ...}}
//! ```
//!
//! `keys` are written every time, `optional_keys` when their value is known;
//! `user_keys`: the user's own keys of the node's instance come along;
//! `resource_tag` (CreateTags): the tag the resource carries already.

use serde_json::{Value, json};

/// The manifest: `{"functions": {<function>: {"tag_writes": [...]}}}`.
pub fn manifest() -> Value {
    let functions: serde_json::Map<String, Value> = crate::tags::writes::by_function()
        .into_iter()
        .map(|(function, writes)| {
            let writes: Vec<Value> = writes.iter().map(|w| w.manifest()).collect();
            (function.to_string(), json!({ "tag_writes": writes }))
        })
        .collect();
    json!({ "functions": functions })
}
