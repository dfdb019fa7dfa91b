//! The server: each request placed ([`Call`]), counted, throttled or delayed as configured, and
//! routed to its service.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use super::call::Call;
use super::json::json_error;
use super::sts::query_error;
use super::world::World;
use super::{account, kms, organizations, secretsmanager, sts};
use crate::bucket::TokenBucket;
use crate::serve::{Answer, Received, Reply};

/// What the handler of every request shares: the world, the options, the counts.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) world: World,
    delay: Duration,
    sts_bucket: Option<TokenBucket>,
    counts: Mutex<Counts>,
    pub(super) in_flight: AtomicUsize,
    pub(super) peak_in_flight: AtomicUsize,
    /// Numbers the request ids.
    requests: AtomicUsize,
}

impl Shared {
    pub(super) fn new(world: World, delay: Duration, sts_bucket: Option<TokenBucket>) -> Self {
        Shared {
            world,
            delay,
            sts_bucket,
            counts: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    pub(super) fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes an `AssumeRole` token; `false` when the bucket is empty.
    fn admit_assume_role(&self) -> bool {
        self.sts_bucket.as_ref().is_none_or(TokenBucket::admit)
    }
}

#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) by_operation: BTreeMap<String, usize>,
    pub(super) throttled: usize,
}

/// Counts a request as read and not yet answered, for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) async fn answer(shared: Arc<Shared>, request: Received) -> Answer {
    let _in_flight = InFlight::new(&shared);
    let call = Call::of(&request);
    // Throttling is decided on arrival, as a quota counts requests when they come.
    let throttled = call.key() == "sts:AssumeRole" && !shared.admit_assume_role();
    {
        let mut counts = shared.counts();
        *counts.by_operation.entry(call.key()).or_default() += 1;
        counts.throttled += usize::from(throttled);
    }
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    let id = format!(
        "standin-{:08}",
        shared.requests.fetch_add(1, Ordering::Relaxed)
    );
    if throttled {
        return Ok(query_error(&id, 400, "Throttling", "Rate exceeded"));
    }
    Ok(route(&shared, &call, &request, &id))
}

fn route(shared: &Shared, call: &Call, request: &Received, id: &str) -> Reply {
    let json = || serde_json::from_slice::<Value>(&request.body).unwrap_or(Value::Null);
    let world = &shared.world;
    match (call.service.as_str(), call.operation.as_str()) {
        ("sts", "AssumeRole") => sts::assume_role(world, &request.body, id),
        ("sts", "GetCallerIdentity") => sts::caller_identity(call, id),
        ("organizations", "ListAccounts") => organizations::list_accounts(world, call, &json(), id),
        ("account", "ListRegions") => account::list_regions(&json(), id),
        ("secretsmanager", "ListSecrets") => secretsmanager::list_secrets(world, call, &json(), id),
        ("secretsmanager", "DescribeSecret") => {
            secretsmanager::describe_secret(world, call, &json(), id)
        }
        ("secretsmanager", "ListSecretVersionIds") => {
            secretsmanager::list_secret_versions(world, call, &json(), id)
        }
        ("secretsmanager", "TagResource" | "UntagResource" | "UpdateSecret") => {
            secretsmanager::write_secret(world, call, &json(), id)
        }
        ("kms", "DescribeKey") => kms::describe_key(world, call, &json(), id),
        ("kms", "GetKeyPolicy") => kms::get_key_policy(call, &json(), id),
        ("kms", "ListGrants") => kms::list_grants(id),
        _ => {
            let message = format!("the stand-in does not answer `{}`", call.key());
            if call.service == "sts" {
                query_error(id, 400, "InvalidAction", &message)
            } else {
                json_error(id, 400, "UnknownOperationException", &message)
            }
        }
    }
}
