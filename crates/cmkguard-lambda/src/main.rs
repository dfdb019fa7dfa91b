//! `cmkguard-lambda`: reads its configuration once at cold start, builds the SDK configuration
//! once, and serves events through the Lambda Runtime API.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cmkguard_aws::AwsPorts;
use cmkguard_core::config::{ASSUME_ROLE_NAME, SWEEP_ACCOUNTS, SweepAccounts};
use cmkguard_core::{Config, Guard, Record};
use cmkguard_lambda::metrics::Metrics;
use cmkguard_lambda::{Invocation, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use tokio::sync::OnceCell;

struct State {
    config: Config,
    attempt_timeout: Duration,
    /// A cap on each call's retries; the invocation deadline bounds them too.
    retry_budget: Duration,
    /// Made at the first invocation that gets that far: the SDK configuration (so init stays at
    /// the floor: loading it reads profile files and TLS roots) and the function's own account.
    warm: OnceCell<Warm>,
}

struct Warm {
    guard: Guard<AwsPorts>,
    region: String,
    own_account: String,
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
    let retry_budget = match cmkguard_aws::retry_budget(|name| std::env::var(name).ok()) {
        Ok(budget) => budget,
        Err(e) => init_failed(&e).await,
    };
    let state = Arc::new(State {
        config,
        attempt_timeout,
        retry_budget,
        warm: OnceCell::new(),
    });

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let state = Arc::clone(&state);
        async move { invoke(&state, event).await }
    }))
    .await
}

async fn invoke(state: &State, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    let warm = state
        .warm
        .get_or_try_init(|| warm_up(state, &ctx.invoked_function_arn))
        .await
        .inspect_err(|e| tracing::error!(request_id = %ctx.request_id, "{e}"))?;
    let invocation = Invocation {
        request_id: ctx.request_id.clone(),
        own_account: warm.own_account.clone(),
        deadline: cmkguard_lambda::deadline_from_header(ctx.deadline, SystemTime::now()),
        region: warm.region.clone(),
    };
    let guard = &warm.guard;
    // Retries of throttled and transient calls stop in time for the handler to report them.
    let retry_until = invocation
        .deadline
        .duration_since(SystemTime::now())
        .ok()
        .and_then(|left| left.checked_sub(cmkguard_core::DEADLINE_MARGIN))
        .map(|left| Instant::now() + left);
    guard
        .ports()
        .retry()
        .set_deadline(Some(retry_until.unwrap_or_else(Instant::now)));
    let started = Instant::now();
    let mut metrics = Metrics::default();
    let result = handle(guard, &payload, &invocation, &mut |record: &Record| {
        emit(record);
        metrics.add(record);
    })
    .await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for line in metrics.lines(started.elapsed(), now_ms, &invocation.request_id) {
        write_line(line);
    }
    if let Err(e) = &result {
        tracing::error!(request_id = %invocation.request_id, "{e}");
    }
    Ok(result?)
}

/// The SDK configuration, the region and the own account, once per warm process. The account
/// comes from the function ARN, else (local emulators name none) from STS `GetCallerIdentity`;
/// a failure there is an invocation error, and the next invocation tries again.
async fn warm_up(state: &State, function_arn: &str) -> Result<Warm, Error> {
    let sdk = cmkguard_aws::sdk_config_with(state.attempt_timeout).await;
    let region = sdk
        .region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
    let own_account = match cmkguard_lambda::account_of_function_arn(function_arn) {
        Some(account) => account.to_owned(),
        None => cmkguard_aws::caller_account(&sdk).await.map_err(|e| {
            format!(
                "the function ARN `{function_arn}` names no account, and `GetCallerIdentity` failed: {e}"
            )
        })?,
    };
    // Which account is the function's own is known only now; the sweep reaches any other only
    // through the role.
    if let (SweepAccounts::Listed(ids), None) =
        (&state.config.sweep_accounts, &state.config.assume_role_name)
        && let Some(other) = ids.iter().find(|id| **id != own_account)
    {
        return Err(format!(
            "invalid `{SWEEP_ACCOUNTS}`: `{other}` is not the function's own account `{own_account}`; set `{ASSUME_ROLE_NAME}` to the role the sweep assumes there"
        )
        .into());
    }
    let ports = AwsPorts::new(
        sdk,
        own_account.clone(),
        state.config.assume_role_name.clone(),
    )
    .with_retry_budget(state.retry_budget);
    Ok(Warm {
        guard: Guard::new(state.config.clone(), ports),
        region,
        own_account,
    })
}

/// One audit record, one line on stdout (CloudWatch Logs).
fn emit(record: &Record) {
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

/// How long the init error report may take: some local emulators never answer it, and a process
/// that cannot start must exit either way.
const INIT_ERROR_REPORT_TIMEOUT: Duration = Duration::from_secs(2);

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
        let _ = tokio::time::timeout(INIT_ERROR_REPORT_TIMEOUT, client.call(request)).await;
    }
}
