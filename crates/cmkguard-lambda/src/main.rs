//! `cmkguard-lambda`: reads its configuration once at cold start, builds the SDK configuration
//! once, and serves events through the Lambda Runtime API.

use std::io::Write;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cmkguard_aws::AwsPorts;
use cmkguard_core::{AuditRecord, Config, Guard};
use cmkguard_lambda::{Invocation, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use tokio::sync::OnceCell;

struct State {
    config: Config,
    attempt_timeout: std::time::Duration,
    /// Made at the first invocation: the SDK configuration (so init stays at the floor: loading
    /// it reads profile files and TLS roots), and the function ARN tells the guard its account.
    guard: OnceCell<(Guard<AwsPorts>, String)>,
}

// One event at a time: a single-threaded runtime starts faster and holds less memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => init_failed(&e).await,
    };
    // Checked here, though the SDK configuration itself is loaded at the first invocation.
    let attempt_timeout = match cmkguard_aws::attempt_timeout(|name| std::env::var(name).ok()) {
        Ok(timeout) => timeout,
        Err(e) => init_failed(&e).await,
    };
    let state = Arc::new(State {
        config,
        attempt_timeout,
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
    let (guard, region) = state
        .guard
        .get_or_init(|| async {
            let sdk = cmkguard_aws::sdk_config_with(state.attempt_timeout).await;
            let region = sdk
                .region()
                .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
            let own = own_account(&ctx.invoked_function_arn)
                .unwrap_or_default()
                .to_owned();
            let ports = AwsPorts::new(sdk, own, state.config.assume_role_name.clone());
            (Guard::new(state.config.clone(), ports), region)
        })
        .await;
    let invocation = Invocation {
        request_id: ctx.request_id.clone(),
        invoked_function_arn: ctx.invoked_function_arn.clone(),
        deadline: ctx.deadline(),
        region: region.clone(),
    };
    let started = Instant::now();
    let mut records = Vec::new();
    let result = handle(guard, &payload, &invocation, &mut |record: &AuditRecord| {
        emit(record);
        records.push(record.clone());
    })
    .await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for line in cmkguard_lambda::metrics::emf_lines(
        &records,
        started.elapsed(),
        now_ms,
        &invocation.request_id,
    ) {
        write_line(line);
    }
    if let Err(e) = &result {
        tracing::error!(request_id = %invocation.request_id, "{e}");
    }
    Ok(result?)
}

fn own_account(function_arn: &str) -> Option<&str> {
    function_arn.split(':').nth(4)
}

/// One audit record, one line on stdout (CloudWatch Logs).
fn emit(record: &AuditRecord) {
    write_line(record.to_json_line());
}

fn write_line(mut line: String) {
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
