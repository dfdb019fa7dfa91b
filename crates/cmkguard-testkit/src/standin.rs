//! A small, fast stand-in for the AWS APIs an organization-wide audit calls (STS, Organizations,
//! Account, Secrets Manager, KMS), for benchmarks at thousands of accounts: moto answers ~150
//! requests/s and keeps every secret in memory, this answers as fast as hyper does and generates
//! its world on the fly.
//!
//! The AWS SDK for Rust reaches it through `AWS_ENDPOINT_URL` (every service at one endpoint). A
//! request is placed by its SigV4 `Authorization` header: the credential scope names the region
//! and the service, the access key id the caller's account. Base credentials (any key id this
//! server did not hand out) act in the management account; `AssumeRole` hands out key ids that
//! encode the target account. Signatures are not checked.
//!
//! The world is a function of (account, region, index): each account-region has the same number
//! of secrets, the first on the AWS managed default key and the others on one customer managed
//! key of that account-region. Only writes (`TagResource`, `UntagResource`, `UpdateSecret`) are
//! stored, per secret written, so memory stays small at 5,000 accounts x 17 regions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_sts::config::Credentials;
use serde_json::{Value, json};

use crate::bucket::TokenBucket;
use crate::http::{form_value, header};
use crate::serve::{Answer, Received, Reply, Server, respond};

/// The management account: where base credentials act, and the organization's owner.
pub const MANAGEMENT_ACCOUNT: &str = crate::DEFAULT_ACCOUNT;

/// The access key id of the base credentials in [`Standin::env`] (any key id not handed out by
/// `AssumeRole` acts in the management account).
pub const BASE_ACCESS_KEY_ID: &str = "AKIDSTANDIN";

/// The 17 commercial regions enabled by default in every account (`account:ListRegions`).
pub const REGIONS: [&str; 17] = [
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// Organizations' page size for `ListAccounts` (its maximum `MaxResults`).
const ACCOUNTS_PAGE: usize = 20;
/// Secrets Manager's maximum `MaxResults` for `ListSecrets`.
const SECRETS_PAGE: usize = 100;
/// Member accounts are `MEMBER_BASE + 1`, `MEMBER_BASE + 2`, ... (12 digits, never the
/// management account).
const MEMBER_BASE: u64 = 100_000_000_000;
/// Session key ids are `ASIA` + the 12-digit account + this (20 characters, as AWS's are).
const SESSION_KEY_SUFFIX: &str = "STND";
/// When every generated secret and key was made (2023-11-14).
const CREATED: f64 = 1_700_000_000.0;
const ORGANIZATION_ID: &str = "o-standin0001";
const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Options of a [`Standin`]; [`StandinBuilder::start`] serves them.
#[derive(Debug, Clone)]
pub struct StandinBuilder {
    members: usize,
    secrets: usize,
    delay: Duration,
    sts_rate: Option<(f64, f64)>,
    designated_alias: Option<String>,
}

impl Default for StandinBuilder {
    fn default() -> Self {
        StandinBuilder {
            members: 10,
            secrets: 3,
            delay: Duration::ZERO,
            sts_rate: None,
            designated_alias: None,
        }
    }
}

impl StandinBuilder {
    /// Member accounts in the organization, besides the management account (default 10).
    pub fn members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    /// Secrets in each account-region (default 3): index 0 on the default key, the others on the
    /// account-region's customer managed key.
    pub fn secrets_per_region(mut self, n: usize) -> Self {
        self.secrets = n;
        self
    }

    /// Held before every answer (default none), as a network round trip to AWS takes.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// `AssumeRole` at most `per_second` with bursts of `burst` (a token bucket); over it the
    /// answer is HTTP 400 `Throttling`, as STS answers.
    pub fn sts_rate_limit(mut self, per_second: f64, burst: f64) -> Self {
        self.sts_rate = Some((per_second, burst));
        self
    }

    /// Makes `alias` (say `alias/cmkguard/secrets`) name each account-region's customer managed
    /// key; without it, `DescribeKey` on any alias but `alias/aws/secretsmanager` is not found.
    pub fn designated_alias(mut self, alias: &str) -> Self {
        self.designated_alias = Some(alias.to_owned());
        self
    }

    /// Serves on `127.0.0.1:<free port>`.
    pub fn start(self) -> Standin {
        let profile = tempfile::tempdir().expect("a folder for empty AWS profile files");
        for name in ["aws-config", "aws-credentials"] {
            std::fs::write(profile.path().join(name), "").expect("an empty AWS profile file");
        }
        let shared = Arc::new(Shared {
            world: World {
                members: self.members,
                secrets: self.secrets,
                designated_alias: self.designated_alias,
            },
            delay: self.delay,
            sts_bucket: self
                .sts_rate
                .map(|(rate, burst)| TokenBucket::new(rate, burst)),
            counts: Mutex::default(),
            written: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        });
        let handler_shared = Arc::clone(&shared);
        let server = Server::start(move |request, _| answer(Arc::clone(&handler_shared), request));
        Standin {
            shared,
            server,
            profile,
        }
    }
}

/// The stand-in server; dropping it closes every connection.
#[derive(Debug)]
pub struct Standin {
    shared: Arc<Shared>,
    server: Server,
    /// Empty profile files, so a child process reads none of the host's.
    profile: tempfile::TempDir,
}

impl Standin {
    /// Options, from the defaults: 10 members, 3 secrets per account-region, no delay, no limit.
    pub fn builder() -> StandinBuilder {
        StandinBuilder::default()
    }

    /// `http://127.0.0.1:PORT`: the value for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Environment for a child process (a cmkguard binary) to reach this server with base
    /// credentials (the management account) in `us-east-1`, reading no profile files and no
    /// instance metadata.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = |name: &str| self.profile.path().join(name).display().to_string();
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", BASE_ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "standin-secret".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", path("aws-config")),
            ("AWS_SHARED_CREDENTIALS_FILE", path("aws-credentials")),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// SDK configuration for this server in `region` with base credentials (the management
    /// account). Reads neither the environment nor the profile files.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        self.sdk_config_with(
            Credentials::new(BASE_ACCESS_KEY_ID, "standin-secret", None, None, "standin"),
            region,
        )
        .await
    }

    /// SDK configuration for this server in `region` with `credentials` (say, `AssumeRole`'s).
    pub async fn sdk_config_with(&self, credentials: Credentials, region: &str) -> SdkConfig {
        crate::moto::local_sdk_config(&self.endpoint(), credentials, region).await
    }

    /// The member accounts, in order.
    pub fn member_accounts(&self) -> impl Iterator<Item = String> + use<> {
        (1..=self.shared.world.members).map(member_account)
    }

    /// The `index`-th secret of `account` in `region` (a name `standin/secret-NNNN`).
    pub fn secret_arn(&self, account: &str, region: &str, index: usize) -> String {
        secret_arn(account, region, index)
    }

    /// The customer managed key that secrets 1.. of `account` in `region` are on.
    pub fn key_arn(&self, account: &str, region: &str) -> String {
        key_arn(account, region)
    }

    /// Requests received per `service:Operation` (e.g. `sts:AssumeRole`), unknown and throttled
    /// ones included.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.shared.counts().by_operation.clone()
    }

    /// Requests received for `operation` (`service:Operation`).
    pub fn count(&self, operation: &str) -> usize {
        self.shared
            .counts()
            .by_operation
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Requests received in all.
    pub fn total(&self) -> usize {
        self.shared.counts().by_operation.values().sum()
    }

    /// `AssumeRole` requests answered with `Throttling`.
    pub fn throttled(&self) -> usize {
        self.shared.counts().throttled
    }

    /// The most requests received and not yet answered at any one time.
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Forgets the counts; the peak in flight starts again from the requests in flight now.
    pub fn reset_counts(&self) {
        *self.shared.counts() = Counts::default();
        let now = self.shared.in_flight.load(Ordering::SeqCst);
        self.shared.peak_in_flight.store(now, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Shared {
    world: World,
    delay: Duration,
    sts_bucket: Option<TokenBucket>,
    counts: Mutex<Counts>,
    /// What writes changed, per secret ARN (the rest of the world is generated).
    written: Mutex<HashMap<String, Written>>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    /// Numbers the request ids.
    requests: AtomicUsize,
}

impl Shared {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn written(&self) -> MutexGuard<'_, HashMap<String, Written>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes an `AssumeRole` token; `false` when the bucket is empty.
    fn admit_assume_role(&self) -> bool {
        self.sts_bucket.as_ref().is_none_or(TokenBucket::admit)
    }
}

#[derive(Debug, Default)]
struct Counts {
    by_operation: BTreeMap<String, usize>,
    throttled: usize,
}

/// A secret's state changed by writes.
#[derive(Debug, Default, Clone)]
struct Written {
    kms_key_id: Option<String>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug)]
struct World {
    members: usize,
    secrets: usize,
    designated_alias: Option<String>,
}

impl World {
    fn has_account(&self, account: &str) -> bool {
        account == MANAGEMENT_ACCOUNT
            || account
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_sub(MEMBER_BASE))
                .is_some_and(|i| (1..=self.members as u64).contains(&i))
    }

    /// The organization's accounts: the management account, then the members.
    fn account(&self, position: usize) -> Option<String> {
        match position {
            0 => Some(MANAGEMENT_ACCOUNT.to_owned()),
            i if i <= self.members => Some(member_account(i)),
            _ => None,
        }
    }

    /// The index of the secret `secret_id` (a name, a full ARN or a partial one) names in the
    /// caller's account and region.
    fn secret_index(&self, call: &Call, secret_id: &str) -> Option<usize> {
        let name = match secret_id.strip_prefix("arn:") {
            Some(_) => {
                let parts: Vec<&str> = secret_id.splitn(7, ':').collect();
                let [_, _, "secretsmanager", region, account, "secret", name] = parts[..] else {
                    return None;
                };
                if region != call.region || account != call.account {
                    return None;
                }
                name
            }
            None => secret_id,
        };
        let rest = name.strip_prefix("standin/secret-")?;
        // A full ARN ends with `-` and six random characters; a name or partial ARN does not.
        let (digits, suffix) = rest.split_once('-').unwrap_or((rest, ""));
        let index: usize = digits.parse().ok()?;
        let matches =
            suffix.is_empty() || suffix == secret_suffix(&call.account, &call.region, index);
        (index < self.secrets && matches).then_some(index)
    }
}

fn member_account(i: usize) -> String {
    format!("{:012}", MEMBER_BASE + i as u64)
}

fn secret_name(index: usize) -> String {
    format!("standin/secret-{index:04}")
}

fn secret_arn(account: &str, region: &str, index: usize) -> String {
    format!(
        "arn:aws:secretsmanager:{region}:{account}:secret:{}-{}",
        secret_name(index),
        secret_suffix(account, region, index)
    )
}

/// The six random-looking letters AWS appends to a secret's ARN, here a hash of its place.
fn secret_suffix(account: &str, region: &str, index: usize) -> String {
    let mut h = fnv(&format!("{account}/{region}/{index}"));
    (0..6)
        .map(|_| {
            let c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[(h % 52) as usize];
            h /= 52;
            char::from(c)
        })
        .collect()
}

/// A UUID-shaped key id, a hash of the key's place and kind.
fn key_id(account: &str, region: &str, kind: &str) -> String {
    let a = fnv(&format!("{kind}/{account}/{region}"));
    let b = fnv(&format!("{region}/{account}/{kind}"));
    let bits = u128::from(a) << 64 | u128::from(b);
    uuid::Builder::from_random_bytes(bits.to_be_bytes())
        .into_uuid()
        .to_string()
}

fn key_arn(account: &str, region: &str) -> String {
    format!(
        "arn:aws:kms:{region}:{account}:key/{}",
        key_id(account, region, "customer")
    )
}

/// FNV-1a: a stable hash (std's are seeded per process).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Who asks what, where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    service: String,
    operation: String,
    region: String,
    account: String,
}

impl Call {
    fn of(request: &Received) -> Call {
        // `Credential=AKID/DATE/REGION/SERVICE/aws4_request`
        let scope: Vec<&str> = header(&request.headers, "authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split([',', ' ']).next())
            .map(|c| c.split('/').collect())
            .unwrap_or_default();
        let field = |i: usize| scope.get(i).copied().unwrap_or_default();
        let service = match field(3) {
            "" => "unknown",
            s => s,
        };
        let region = match field(2) {
            "" => "us-east-1",
            r => r,
        };
        let operation = if let Some(target) = header(&request.headers, "x-amz-target") {
            // JSON 1.1: `TrentService.DescribeKey`, `secretsmanager.ListSecrets`.
            target.rsplit('.').next().unwrap_or(target).to_owned()
        } else if request.method == "POST"
            && let Some(action) = form_value(&request.body, "Action")
        {
            // Query protocol (STS).
            action
        } else {
            // REST (Account): `POST /listRegions` is `ListRegions`.
            let mut name = request.path().trim_start_matches('/').to_owned();
            if let Some(first) = name.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            name
        };
        Call {
            service: service.to_owned(),
            operation,
            region: region.to_owned(),
            account: account_of_key(field(0)),
        }
    }

    fn key(&self) -> String {
        format!("{}:{}", self.service, self.operation)
    }
}

/// The account a key id acts in: the one a session key id encodes, else the management account.
fn account_of_key(access_key_id: &str) -> String {
    access_key_id
        .strip_prefix("ASIA")
        .and_then(|rest| rest.strip_suffix(SESSION_KEY_SUFFIX))
        .filter(|account| account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(MANAGEMENT_ACCOUNT)
        .to_owned()
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

async fn answer(shared: Arc<Shared>, request: Received) -> Answer {
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
    match (call.service.as_str(), call.operation.as_str()) {
        ("sts", "AssumeRole") => assume_role(&shared.world, &request.body, id),
        ("sts", "GetCallerIdentity") => caller_identity(call, id),
        ("organizations", "ListAccounts") => list_accounts(&shared.world, call, &json(), id),
        ("account", "ListRegions") => list_regions(&json(), id),
        ("secretsmanager", "ListSecrets") => list_secrets(shared, call, &json(), id),
        ("secretsmanager", "DescribeSecret") => describe_secret(shared, call, &json(), id),
        ("secretsmanager", "ListSecretVersionIds") => {
            list_secret_versions(shared, call, &json(), id)
        }
        ("secretsmanager", "TagResource" | "UntagResource" | "UpdateSecret") => {
            write_secret(shared, call, &json(), id)
        }
        ("kms", "DescribeKey") => describe_key(&shared.world, call, &json(), id),
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

// STS (query protocol: form-encoded requests, XML answers).

fn assume_role(world: &World, form: &[u8], id: &str) -> Reply {
    let role_arn = form_value(form, "RoleArn").unwrap_or_default();
    let session = form_value(form, "RoleSessionName").unwrap_or_else(|| "session".to_owned());
    // `arn:aws:iam::ACCOUNT:role/NAME`
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let (account, role) = match parts[..] {
        ["arn", _, "iam", "", account, resource] => {
            (account, resource.strip_prefix("role/").unwrap_or_default())
        }
        _ => {
            let message = format!("`{role_arn}` is not a role ARN");
            return query_error(id, 400, "ValidationError", &message);
        }
    };
    if !world.has_account(account) || role.is_empty() {
        let message = format!("not authorized to perform `sts:AssumeRole` on `{role_arn}`");
        return query_error(id, 403, "AccessDenied", &message);
    }
    let seconds: u64 = form_value(form, "DurationSeconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    let expiration = iso8601(now_secs() + seconds);
    let role_name = role.rsplit('/').next().unwrap_or(role);
    query_reply(
        "AssumeRole",
        &format!(
            "<AssumedRoleUser><AssumedRoleId>AROASTANDIN{account}:{session}</AssumedRoleId>\
             <Arn>arn:aws:sts::{account}:assumed-role/{role_name}/{session}</Arn></AssumedRoleUser>\
             <Credentials><AccessKeyId>ASIA{account}{SESSION_KEY_SUFFIX}</AccessKeyId>\
             <SecretAccessKey>standin-secret-{account}</SecretAccessKey>\
             <SessionToken>standin-session-{account}</SessionToken>\
             <Expiration>{expiration}</Expiration></Credentials>\
             <PackedPolicySize>0</PackedPolicySize>",
            session = xml_escape(&session),
            role_name = xml_escape(role_name),
        ),
        id,
    )
}

fn caller_identity(call: &Call, id: &str) -> Reply {
    let account = &call.account;
    let (arn, user) = if account == MANAGEMENT_ACCOUNT {
        (
            format!("arn:aws:iam::{account}:user/standin"),
            "AIDASTANDIN".to_owned(),
        )
    } else {
        // The session key id encodes only the account: the role and session are not kept.
        (
            format!("arn:aws:sts::{account}:assumed-role/standin/standin"),
            format!("AROASTANDIN{account}:standin"),
        )
    };
    query_reply(
        "GetCallerIdentity",
        &format!("<Arn>{arn}</Arn><UserId>{user}</UserId><Account>{account}</Account>"),
        id,
    )
}

fn query_reply(operation: &str, result: &str, id: &str) -> Reply {
    let body = format!(
        "<{operation}Response xmlns=\"{STS_NAMESPACE}\"><{operation}Result>{result}</{operation}Result>\
         <ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata></{operation}Response>"
    );
    respond(
        200,
        &[("Content-Type", "text/xml"), ("x-amzn-RequestId", id)],
        body,
    )
}

/// A query-protocol error; `Throttling` is one the SDK retries as throttling.
fn query_error(id: &str, status: u16, code: &str, message: &str) -> Reply {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"{STS_NAMESPACE}\"><Error><Type>{kind}</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
        xml_escape(message)
    );
    respond(
        status,
        &[("Content-Type", "text/xml"), ("x-amzn-RequestId", id)],
        body,
    )
}

// Organizations (JSON 1.1) and Account (REST JSON).

fn list_accounts(world: &World, call: &Call, input: &Value, id: &str) -> Reply {
    if call.account != MANAGEMENT_ACCOUNT {
        let message = "only the management account can list the organization's accounts";
        return json_error(id, 400, "AccessDeniedException", message);
    }
    let Some(start) = page_start(input) else {
        return json_error(id, 400, "InvalidInputException", "invalid `NextToken`");
    };
    let size = page_size(input, ACCOUNTS_PAGE);
    let accounts: Vec<Value> = (start..start + size)
        .map_while(|position| world.account(position))
        .map(|account| {
            let name = if account == MANAGEMENT_ACCOUNT {
                "management".to_owned()
            } else {
                format!("member-{account}")
            };
            json!({
                "Id": account,
                "Arn": format!("arn:aws:organizations::{MANAGEMENT_ACCOUNT}:account/{ORGANIZATION_ID}/{account}"),
                "Email": format!("standin+{account}@example.com"),
                "Name": name,
                "Status": "ACTIVE",
                "State": "ACTIVE",
                "JoinedMethod": "CREATED",
                "JoinedTimestamp": CREATED,
            })
        })
        .collect();
    let mut output = json!({ "Accounts": accounts });
    if world.account(start + size).is_some() {
        output["NextToken"] = next_token(start + size);
    }
    json_reply(id, "application/x-amz-json-1.1", &output)
}

fn list_regions(input: &Value, id: &str) -> Reply {
    // Every region is enabled by default: a filter without that status matches none.
    let wanted = input["RegionOptStatusContains"]
        .as_array()
        .is_none_or(|statuses| statuses.iter().any(|s| s == "ENABLED_BY_DEFAULT"));
    let Some(start) = page_start(input) else {
        return json_error(id, 400, "ValidationException", "invalid `NextToken`");
    };
    let regions: Vec<&str> = if wanted { REGIONS.to_vec() } else { Vec::new() };
    let size = page_size(input, regions.len().max(1));
    let page: Vec<Value> = regions
        .iter()
        .skip(start)
        .take(size)
        .map(|r| json!({"RegionName": r, "RegionOptStatus": "ENABLED_BY_DEFAULT"}))
        .collect();
    let mut output = json!({ "Regions": page });
    if start + size < regions.len() {
        output["NextToken"] = next_token(start + size);
    }
    json_reply(id, "application/json", &output)
}

// Secrets Manager (JSON 1.1).

/// A secret as `ListSecrets` (`versions` = `SecretVersionsToStages`) or `DescribeSecret`
/// (`VersionIdsToStages`) shows it, with what writes changed.
fn secret_json(call: &Call, index: usize, written: Option<&Written>, versions: &str) -> Value {
    let (account, region) = (call.account.as_str(), call.region.as_str());
    let mut secret = json!({
        "ARN": secret_arn(account, region, index),
        "Name": secret_name(index),
        "CreatedDate": CREATED,
        "LastChangedDate": CREATED,
        versions: { key_id(account, region, &format!("version-{index}")): ["AWSCURRENT"] },
    });
    // The first is on the default key: AWS then reports no `KmsKeyId`.
    let kms_key_id = written
        .and_then(|w| w.kms_key_id.clone())
        .or_else(|| (index > 0).then(|| key_arn(account, region)));
    if let Some(key) = kms_key_id {
        secret["KmsKeyId"] = key.into();
    }
    if let Some(written) = written.filter(|w| !w.tags.is_empty()) {
        secret["Tags"] = written
            .tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
    }
    secret
}

/// Filters are not applied: the audit lists everything.
fn list_secrets(shared: &Shared, call: &Call, input: &Value, id: &str) -> Reply {
    let Some(start) = page_start(input) else {
        return json_error(id, 400, "InvalidNextTokenException", "invalid `NextToken`");
    };
    let size = page_size(input, SECRETS_PAGE);
    let end = (start + size).min(shared.world.secrets);
    let written = shared.written();
    let secrets: Vec<Value> = (start..end)
        .map(|index| {
            let arn = secret_arn(&call.account, &call.region, index);
            secret_json(call, index, written.get(&arn), "SecretVersionsToStages")
        })
        .collect();
    drop(written);
    let mut output = json!({ "SecretList": secrets });
    if end < shared.world.secrets {
        output["NextToken"] = next_token(end);
    }
    json_reply(id, "application/x-amz-json-1.1", &output)
}

fn describe_secret(shared: &Shared, call: &Call, input: &Value, id: &str) -> Reply {
    let secret_id = input["SecretId"].as_str().unwrap_or_default();
    let Some(index) = shared.world.secret_index(call, secret_id) else {
        return secret_not_found(id);
    };
    let arn = secret_arn(&call.account, &call.region, index);
    let written = shared.written().get(&arn).cloned();
    let secret = secret_json(call, index, written.as_ref(), "VersionIdsToStages");
    json_reply(id, "application/x-amz-json-1.1", &secret)
}

/// `ListSecretVersionIds`: the one current version, with its keys (`KmsKeyIds`, which moto does
/// not give). One secret in [`MOVED_BY_OTHERS`] (index 1, 11, 21, ...) was moved off the AWS
/// managed key by someone else, so its current version names both keys.
fn list_secret_versions(shared: &Shared, call: &Call, input: &Value, id: &str) -> Reply {
    let secret_id = input["SecretId"].as_str().unwrap_or_default();
    let Some(index) = shared.world.secret_index(call, secret_id) else {
        return secret_not_found(id);
    };
    let (account, region) = (call.account.as_str(), call.region.as_str());
    let keys = match index {
        0 => vec![DEFAULT_ENCRYPTION_KEY.to_owned()],
        i if i % MOVED_BY_OTHERS == 1 => {
            vec![DEFAULT_ENCRYPTION_KEY.to_owned(), key_arn(account, region)]
        }
        _ => vec![key_arn(account, region)],
    };
    let output = json!({
        "ARN": secret_arn(account, region, index),
        "Name": secret_name(index),
        "Versions": [{
            "VersionId": key_id(account, region, &format!("version-{index}")),
            "VersionStages": ["AWSCURRENT"],
            "KmsKeyIds": keys,
            "CreatedDate": CREATED,
        }],
    });
    json_reply(id, "application/x-amz-json-1.1", &output)
}

/// Every this many secrets, one (index 1, 11, ...) was moved by others: see
/// [`list_secret_versions`].
pub const MOVED_BY_OTHERS: usize = 10;
const DEFAULT_ENCRYPTION_KEY: &str = "DefaultEncryptionKey";

/// `TagResource`, `UntagResource`, `UpdateSecret` (only its `KmsKeyId`).
fn write_secret(shared: &Shared, call: &Call, input: &Value, id: &str) -> Reply {
    let secret_id = input["SecretId"].as_str().unwrap_or_default();
    let Some(index) = shared.world.secret_index(call, secret_id) else {
        return secret_not_found(id);
    };
    let arn = secret_arn(&call.account, &call.region, index);
    let mut written = shared.written();
    let state = written.entry(arn.clone()).or_default();
    let strings = |field: &str| {
        input[field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    let output = match call.operation.as_str() {
        "TagResource" => {
            for tag in input["Tags"].as_array().into_iter().flatten() {
                let key = tag["Key"].as_str().unwrap_or_default().to_owned();
                let value = tag["Value"].as_str().unwrap_or_default().to_owned();
                state.tags.insert(key, value);
            }
            json!({})
        }
        "UntagResource" => {
            for key in strings("TagKeys") {
                state.tags.remove(&key);
            }
            json!({})
        }
        _ => {
            if let Some(key) = input["KmsKeyId"].as_str() {
                state.kms_key_id = Some(key.to_owned());
            }
            json!({"ARN": arn, "Name": secret_name(index)})
        }
    };
    json_reply(id, "application/x-amz-json-1.1", &output)
}

fn secret_not_found(id: &str) -> Reply {
    let message = "Secrets Manager can't find the specified secret.";
    json_error(id, 400, "ResourceNotFoundException", message)
}

// KMS (JSON 1.1).

fn describe_key(world: &World, call: &Call, input: &Value, id: &str) -> Reply {
    let (account, region) = (call.account.as_str(), call.region.as_str());
    let key_id_in = input["KeyId"].as_str().unwrap_or_default();
    let customer = key_id(account, region, "customer");
    let aws = key_id(account, region, "aws");
    // An ARN names its account and region; a bare id or alias is the caller's.
    let (owner, place, resource) = match key_id_in.strip_prefix("arn:") {
        Some(_) => {
            let parts: Vec<&str> = key_id_in.splitn(6, ':').collect();
            let ["arn", _, "kms", place, owner, resource] = parts[..] else {
                return kms_not_found(id, key_id_in);
            };
            (owner, place, resource)
        }
        None => (account, region, key_id_in),
    };
    if owner != account {
        let message = format!("not authorized to perform `kms:DescribeKey` on `{key_id_in}`");
        return json_error(id, 400, "AccessDeniedException", &message);
    }
    if place != region {
        return kms_not_found(id, key_id_in);
    }
    let found = if let Some(alias) = resource.strip_prefix("alias/") {
        if alias == "aws/secretsmanager" {
            Some((aws.as_str(), "AWS"))
        } else if world.designated_alias.as_deref() == Some(resource) {
            Some((customer.as_str(), "CUSTOMER"))
        } else {
            None
        }
    } else {
        let key = resource.strip_prefix("key/").unwrap_or(resource);
        if key == aws {
            Some((aws.as_str(), "AWS"))
        } else if is_uuid(key) {
            // Any key id of the caller's is a customer managed key, enabled.
            Some((key, "CUSTOMER"))
        } else {
            None
        }
    };
    let Some((key, manager)) = found else {
        return kms_not_found(id, key_id_in);
    };
    let description = if manager == "AWS" {
        "Default key that protects my Secrets Manager data when no other key is defined"
    } else {
        "cmkguard stand-in key"
    };
    let metadata = json!({
        "KeyMetadata": {
            "AWSAccountId": account,
            "KeyId": key,
            "Arn": format!("arn:aws:kms:{region}:{account}:key/{key}"),
            "CreationDate": CREATED,
            "Enabled": true,
            "Description": description,
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": "Enabled",
            "Origin": "AWS_KMS",
            "KeyManager": manager,
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "MultiRegion": false,
        }
    });
    json_reply(id, "application/x-amz-json-1.1", &metadata)
}

fn kms_not_found(id: &str, key_id: &str) -> Reply {
    let message = format!("Key '{key_id}' does not exist");
    json_error(id, 400, "NotFoundException", &message)
}

/// A key id: a UUID in its hyphenated form (the only form of 36 characters `uuid` reads).
fn is_uuid(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
}

// Shared shapes.

fn json_reply(id: &str, content_type: &str, body: &Value) -> Reply {
    respond(
        200,
        &[("Content-Type", content_type), ("x-amzn-RequestId", id)],
        body.to_string(),
    )
}

/// A JSON-protocol error: the code in `__type` and in `x-amzn-ErrorType` (REST JSON reads the
/// header).
fn json_error(id: &str, status: u16, code: &str, message: &str) -> Reply {
    respond(
        status,
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", id),
            ("x-amzn-ErrorType", code),
        ],
        json!({"__type": code, "message": message}).to_string(),
    )
}

/// Page tokens are the index of the page's first item: `standin-<n>`.
fn next_token(start: usize) -> Value {
    format!("standin-{start}").into()
}

/// Where the page starts: 0 without a token, `None` for a token not made here.
fn page_start(input: &Value) -> Option<usize> {
    match input["NextToken"].as_str() {
        None => Some(0),
        Some(token) => token.strip_prefix("standin-")?.parse().ok(),
    }
}

/// `MaxResults`, at most `max` (as the services cap it), else `max`.
fn page_size(input: &Value, max: usize) -> usize {
    input["MaxResults"]
        .as_u64()
        .map_or(max, |n| (n as usize).clamp(1, max))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` since the epoch as an ISO 8601 UTC time, as STS writes `Expiration`.
fn iso8601(secs: u64) -> String {
    aws_sdk_sts::primitives::DateTime::from_secs(secs as i64)
        .fmt(aws_sdk_sts::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn session_key_ids_name_their_account() {
        assert_eq!(account_of_key("ASIA100000000007STND"), "100000000007");
        assert_eq!(account_of_key("AKIDSTANDIN"), MANAGEMENT_ACCOUNT);
        assert_eq!(account_of_key("ASIA1000STND"), MANAGEMENT_ACCOUNT);
    }

    #[test]
    fn secrets_are_found_by_name_and_by_arn_in_their_own_account_and_region() {
        let world = World {
            members: 2,
            secrets: 3,
            designated_alias: None,
        };
        let call = |account: &str, region: &str| Call {
            service: "secretsmanager".into(),
            operation: "DescribeSecret".into(),
            region: region.into(),
            account: account.into(),
        };
        let member = member_account(2);
        let arn = secret_arn(&member, "eu-west-1", 2);
        assert_eq!(
            world.secret_index(&call(&member, "eu-west-1"), &arn),
            Some(2)
        );
        let partial = arn.rsplit_once('-').unwrap().0;
        assert_eq!(
            world.secret_index(&call(&member, "eu-west-1"), partial),
            Some(2)
        );
        assert_eq!(
            world.secret_index(&call(&member, "eu-west-1"), "standin/secret-0001"),
            Some(1)
        );
        assert_eq!(world.secret_index(&call(&member, "us-east-1"), &arn), None);
        assert_eq!(
            world.secret_index(&call(MANAGEMENT_ACCOUNT, "eu-west-1"), &arn),
            None
        );
        assert_eq!(
            world.secret_index(&call(&member, "eu-west-1"), "standin/secret-0003"),
            None
        );
        assert!(world.has_account(&member));
        assert!(!world.has_account(&member_account(3)));
    }
}
