//! `cmkguard-lambda`: reads its configuration once at cold start, builds the SDK configuration
//! once, and serves events through the Lambda Runtime API.

use std::io::Write;
use std::sync::Arc;

use cmkguard_aws::AwsPorts;
use cmkguard_core::{AuditRecord, Config, Guard};
use cmkguard_lambda::{Invocation, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use tokio::sync::OnceCell;

struct State {
    config: Config,
    sdk: aws_config::SdkConfig,
    region: String,
    /// Made at the first invocation, when the function ARN tells the guard its own account.
    guard: OnceCell<Guard<AwsPorts>>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => init_failed(&e).await,
    };
    let sdk = match cmkguard_aws::sdk_config().await {
        Ok(sdk) => sdk,
        Err(e) => init_failed(&e).await,
    };
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let state = Arc::new(State {
        config,
        sdk,
        region,
        guard: OnceCell::new(),
    });

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let state = Arc::clone(&state);
        async move { invoke(&state, event).await }
    }))
    .await
}

async fn invoke(state: &State, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    let invocation = Invocation {
        request_id: ctx.request_id.clone(),
        invoked_function_arn: ctx.invoked_function_arn.clone(),
        deadline: ctx.deadline(),
        region: state.region.clone(),
    };
    let guard = state
        .guard
        .get_or_init(|| async {
            let own = invocation.own_account().unwrap_or_default().to_owned();
            let ports = AwsPorts::new(
                state.sdk.clone(),
                own,
                state.config.assume_role_name.clone(),
            );
            Guard::new(state.config.clone(), ports)
        })
        .await;
    let result = handle(guard, &payload, &invocation, &mut emit).await;
    if let Err(e) = &result {
        tracing::error!(request_id = %invocation.request_id, "{e}");
    }
    Ok(result?)
}

/// One audit record, one line on stdout (CloudWatch Logs).
fn emit(record: &AuditRecord) {
    let mut line = record.to_json_line();
    line.push('\n');
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing::Level::INFO.into())
        .with_env_var("AWS_LAMBDA_LOG_LEVEL")
        .from_env_lossy();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .init();
}

/// Logs a configuration error, reports it to the Runtime API and exits.
async fn init_failed(e: &cmkguard_core::ConfigError) -> ! {
    tracing::error!(variable = e.variable, "{e}");
    report_init_error(&e.to_string()).await;
    std::process::exit(1);
}

/// Tells the Runtime API that init failed, so Lambda reports the message (it names the variable).
async fn report_init_error(message: &str) {
    let Ok(client) = lambda_runtime_api_client::Client::builder().build() else {
        return;
    };
    let body =
        serde_json::json!({ "errorMessage": message, "errorType": "Runtime.InvalidConfiguration" });
    let request = lambda_runtime_api_client::build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header(
            "Lambda-Runtime-Function-Error-Type",
            "Runtime.InvalidConfiguration",
        )
        .body(lambda_runtime_api_client::body::Body::from(
            body.to_string(),
        ));
    if let Ok(request) = request {
        let _ = client.call(request).await;
    }
}
