//! Not built yet: see the README's status section.

use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    run(service_fn(async |_: LambdaEvent<Value>| {
        Err::<Value, Error>(format!("{} is not implemented yet", env!("CARGO_PKG_NAME")).into())
    }))
    .await
}
