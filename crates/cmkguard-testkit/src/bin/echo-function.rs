//! The function process of the Runtime API emulator's round-trip test
//! (`tests/runtime_api.rs`): the `lambda_runtime` client, as the Lambda binary uses it, answering
//! each event with the event and its context, or failing when the event says `{"fail": MESSAGE}`.
//! A process of its own because the client takes its endpoint from the environment.

use serde_json::{Value, json};

fn main() -> Result<(), lambda_runtime::Error> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<Value>| async move {
            if let Some(message) = event.payload["fail"].as_str() {
                return Err(lambda_runtime::Error::from(message.to_owned()));
            }
            Ok(json!({
                "echo": event.payload,
                "request_id": event.context.request_id,
                "function_arn": event.context.invoked_function_arn,
                "deadline_ms": event.context.deadline,
            }))
        },
    )))
}
