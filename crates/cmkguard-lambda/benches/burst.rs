//! `just bench-burst`: a burst of CreateSecret events, as one `terraform apply` makes, under AWS's
//! request quotas, through concurrent handlers: first the `cmkguard handle-event` CLI (one process
//! per event), then the Lambda binary (one warm process per worker, each under its own Runtime
//! API emulator). A proxy in front of moto enforces the quotas with token buckets, scaled down
//! (moto answers only ~150 requests/s). A failed delivery is delivered again 2 s later, at most
//! three deliveries in all, as EventBridge and Lambda retry.
//!
//! Prints first-delivery failures, throttled responses, events lost after three deliveries,
//! secrets left on the default key, and wall time against the quota floor: for each quota group,
//! the requests that got through divided by its (scaled) rate; the floor is the largest. Asserts
//! nothing about time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark: fail loudly, print freely

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cmkguard_testkit::world::SecretSpec;
use cmkguard_testkit::{
    FaultProxy, Moto, Outcome, RateLimits, RuntimeApi, event_for, workspace_root,
};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const DELIVERIES: usize = 3;
const REDELIVERY_DELAY: Duration = Duration::from_secs(2);

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn release_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join("release").join(name);
    assert!(
        path.is_file(),
        "build it first: {} (`just bench-burst` does)",
        path.display()
    );
    path
}

struct World {
    moto: Moto,
    proxy: FaultProxy,
    arns: Vec<String>,
    designated: String,
}

async fn world(events: usize, scale: f64) -> World {
    let moto = Moto::start();
    let keys = moto.make_keys(ACCOUNT, REGION, true).await;
    // The secrets are made straight in moto (their CreateSecret calls are not the guard's).
    let mut arns = Vec::with_capacity(events);
    for chunk in (0..events).collect::<Vec<_>>().chunks(16) {
        let made = futures_join(chunk.iter().map(|i| {
            let spec = SecretSpec {
                name: format!("burst/app-{i:04}"),
                account: ACCOUNT.into(),
                region: REGION.into(),
                key: "default".into(),
                ..Default::default()
            };
            let moto = &moto;
            let keys = &keys;
            async move { moto.make_secret(&spec, keys).await.arn }
        }))
        .await;
        arns.extend(made);
    }
    let proxy = FaultProxy::start(&moto.endpoint());
    proxy.rate_limit(RateLimits::aws(scale));
    World {
        moto,
        proxy,
        arns,
        designated: keys.designated,
    }
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await);
    }
    out
}

/// One CreateSecret event per secret, each with an event id of its own.
fn events(arns: &[String]) -> Vec<Value> {
    arns.iter()
        .enumerate()
        .map(|(i, arn)| {
            let mut event = event_for("CreateSecret-default-key.json", arn);
            event["detail"]["eventID"] = format!("00000000-0000-4000-8000-{i:012}").into();
            event
        })
        .collect()
}

fn guard_env(world: &World) -> Vec<(String, String)> {
    let mut env = world.proxy.env(world.moto.env());
    env.push(("CMKGUARD_ACTIONS".into(), "tag,remediate".into()));
    env.push(("CMKGUARD_REMEDIATE_ACCOUNTS".into(), ACCOUNT.into()));
    env
}

#[derive(Default, Debug)]
struct Tally {
    first_failures: usize,
    failures: usize,
    lost: usize,
}

/// The quota floor: per group, the requests that got through over its rate; the largest.
fn floor(proxy: &FaultProxy, scale: f64) -> (Duration, String) {
    let limits = RateLimits::aws(scale);
    let mut per_group: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for seen in proxy.seen().iter().filter(|s| s.fault.is_none()) {
        if let Some((group, rate)) = limits.group_of(&seen.service, &seen.operation) {
            per_group.entry(group).or_insert((0, rate)).0 += 1;
        }
    }
    let (group, (n, rate)) = per_group
        .iter()
        .max_by(|a, b| (a.1.0 as f64 / a.1.1).total_cmp(&(b.1.0 as f64 / b.1.1)))
        .map(|(g, v)| (*g, *v))
        .unwrap_or(("none", (0, 1.0)));
    (
        Duration::from_secs_f64(n as f64 / rate),
        format!("{group}: {n} requests at {rate}/s"),
    )
}

async fn report(label: &str, world: &World, tally: &Tally, wall: Duration, scale: f64) {
    let (floor, why) = floor(&world.proxy, scale);
    let mut on_default = 0;
    for arn in &world.arns {
        let state = world.moto.secret_state(ACCOUNT, REGION, arn).await;
        if state.kms_key_id.as_deref() != Some(world.designated.as_str()) {
            on_default += 1;
        }
    }
    let n = world.arns.len();
    println!("{label}");
    println!(
        "  first deliveries failed: {} of {n} ({:.1}%; target <= 5%)",
        tally.first_failures,
        100.0 * tally.first_failures as f64 / n as f64
    );
    println!("  failed deliveries in all: {}", tally.failures);
    println!("  throttled responses: {}", world.proxy.throttled());
    println!(
        "  events lost after {DELIVERIES} deliveries: {} (target 0)",
        tally.lost
    );
    println!("  secrets not on the designated key: {on_default}");
    println!(
        "  wall {:.1} s, quota floor {:.1} s ({why}): {:.2}x the floor (target <= 1.5x)",
        wall.as_secs_f64(),
        floor.as_secs_f64(),
        wall.as_secs_f64() / floor.as_secs_f64().max(f64::EPSILON)
    );
    println!("  requests: {:?}", world.proxy.counts());
}

/// Each event through `cmkguard handle-event`, `workers` at a time.
fn through_cli(world: &World, events: &[Value], workers: usize) -> Tally {
    let cli = release_binary("cmkguard");
    let env = guard_env(world);
    let queue: Arc<Mutex<VecDeque<(usize, usize, Instant)>>> = Arc::new(Mutex::new(
        (0..events.len()).map(|i| (i, 1, Instant::now())).collect(),
    ));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let pending = Arc::new(Mutex::new(events.len()));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if *pending.lock().unwrap() == 0 {
                        return;
                    }
                    let next = {
                        let mut q = queue.lock().unwrap();
                        match q.front() {
                            Some((_, _, at)) if *at <= Instant::now() => q.pop_front(),
                            _ => None,
                        }
                    };
                    let Some((i, delivery, _)) = next else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    let ok = cmkguard_testkit::run_with_input(
                        Command::new(&cli)
                            .args(["handle-event", "-"])
                            .env_clear()
                            .envs(env.iter().cloned()),
                        events[i].to_string().as_bytes(),
                    )
                    .status
                    .success();
                    let mut t = tally.lock().unwrap();
                    if ok {
                        *pending.lock().unwrap() -= 1;
                        continue;
                    }
                    t.failures += 1;
                    t.first_failures += usize::from(delivery == 1);
                    if delivery < DELIVERIES {
                        queue.lock().unwrap().push_back((
                            i,
                            delivery + 1,
                            Instant::now() + REDELIVERY_DELAY,
                        ));
                    } else {
                        t.lost += 1;
                        *pending.lock().unwrap() -= 1;
                    }
                }
            });
        }
    });
    Arc::try_unwrap(tally).unwrap().into_inner().unwrap()
}

/// Each worker is one warm Lambda process under its own Runtime API; events round-robin.
fn through_lambda(world: &World, events: &[Value], workers: usize) -> Tally {
    let lambda = release_binary("cmkguard-lambda");
    let env = guard_env(world);
    let apis: Vec<RuntimeApi> = (0..workers)
        .map(|_| RuntimeApi::start(Vec::new()).with_timeout(Duration::from_secs(60)))
        .collect();
    let mut children: Vec<_> = apis
        .iter()
        .map(|api| {
            Command::new(&lambda)
                .env_clear()
                .envs(env.iter().cloned())
                .envs(api.env())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // The event index behind each handed-out payload: by its CloudTrail event id.
    let id_of = |event: &Value| {
        event["detail"]["eventID"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let index: BTreeMap<String, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (id_of(e), i))
        .collect();
    let mut deliveries = vec![1usize; events.len()];
    for (i, event) in events.iter().enumerate() {
        apis[i % workers].push_event(event.clone());
    }
    let mut tally = Tally::default();
    let mut seen = vec![0usize; workers];
    let mut later: Vec<(Instant, usize)> = Vec::new();
    let mut done = 0;
    while done < events.len() {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        later.retain(|(at, i)| {
            if *at <= now {
                apis[i % workers].push_event(events[*i].clone());
                false
            } else {
                true
            }
        });
        for (w, api) in apis.iter().enumerate() {
            let results = api.invocations();
            for result in &results[seen[w]..] {
                let i = result
                    .event
                    .as_ref()
                    .map(id_of)
                    .and_then(|id| index.get(&id).copied());
                let Some(i) = i else { continue };
                match result.outcome {
                    Outcome::Response(_) => done += 1,
                    _ => {
                        tally.failures += 1;
                        tally.first_failures += usize::from(deliveries[i] == 1);
                        if deliveries[i] < DELIVERIES {
                            deliveries[i] += 1;
                            later.push((now + REDELIVERY_DELAY, i));
                        } else {
                            tally.lost += 1;
                            done += 1;
                        }
                    }
                }
            }
            seen[w] = results.len();
        }
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    tally
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = number("BURST_EVENTS", 300);
    let workers = number("BURST_WORKERS", 30);
    let scale = std::env::var("BURST_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.2);
    println!(
        "burst: {n} CreateSecret events, {workers} concurrent handlers, AWS quotas x{scale} (UpdateSecret {}/s, TagResource {}/s), actions tag,remediate\n",
        50.0 * scale,
        50.0 * scale
    );
    for mode in ["cli", "lambda"] {
        let world = world(n, scale).await;
        let events = events(&world.arns);
        world.proxy.reset_counts();
        let started = Instant::now();
        let tally = match mode {
            "cli" => through_cli(&world, &events, workers),
            _ => through_lambda(&world, &events, workers),
        };
        let wall = started.elapsed();
        let label = match mode {
            "cli" => "through `cmkguard handle-event` (a process per event)",
            _ => "through the Lambda binary (Runtime API, a warm process per handler)",
        };
        report(label, &world, &tally, wall, scale).await;
        println!();
    }
}
