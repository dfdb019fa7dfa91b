//! `cmkguard audit`: every secret of the chosen accounts and regions, through the engine's sweep.
//! It reads one way: the account-regions as they become known (`scopes`), a sweep of each that
//! writes what it found into its lane (`sweep`), `--concurrency` of them at a time, and the sink
//! that writes it all out in order (`order`, `sink`).

use std::io::Write;
use std::time::Duration;

use clap::Args;
use cmkguard_aws::AwsPorts;
use cmkguard_core::config::Config;
use cmkguard_core::event::EventMeta;
use cmkguard_core::{Context, Guard};
use futures_util::stream::StreamExt;

use crate::exit::{self, Failure};
use crate::order;
use crate::output::Format;
use crate::progress::Progress;
use crate::scopes::{self, ACCOUNTS_AHEAD, Accounts};
use crate::sink::Sink;
use crate::sweep::Sweeper;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// A region to audit; repeat for more (default: the configured AWS region)
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Every region enabled for each account (`account:ListRegions`)
    #[arg(long, conflicts_with = "regions")]
    pub all_regions: bool,
    /// Comma list of the account ids to audit (default: the caller's own); others are reached
    /// through `--assume-role-name`
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub accounts: Vec<String>,
    /// Every active account of the organization (`organizations:ListAccounts`, from the
    /// management account or a delegated administrator)
    #[arg(long, conflicts_with = "accounts")]
    pub organization: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Account-regions audited at the same time (each has its own AWS quotas)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY, value_parser = concurrency)]
    pub concurrency: usize,
    /// Run the configured actions; without it nothing changes and each is listed as `dry_run`
    #[arg(long)]
    pub apply: bool,
}

/// Account-regions in flight by default: at 100 ms per AWS answer an account-region takes about
/// 200 ms (a `ListSecrets` page, then its keys), so 256 of them audit 1,000 accounts x 17 regions
/// in about 15 s (`just bench-org`). Each account-region has its own quotas, so this is not a
/// load on any one of them.
pub const DEFAULT_CONCURRENCY: usize = 256;

fn concurrency(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n @ 1..=4096) => Ok(n),
        _ => Err(format!("`{value}` is not a number from 1 to 4096")),
    }
}

/// How many account-regions may wait, done or not, behind the one being written: bounds the
/// records held back for the fixed output order.
fn window(concurrency: usize) -> usize {
    concurrency * 4
}

pub async fn run(
    config: Config,
    args: AuditArgs,
    retry_budget: Duration,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<u8, Failure> {
    let Plan {
        guard,
        ctx,
        accounts,
        regions,
    } = plan(config, &args, retry_budget).await?;
    let meta = EventMeta {
        event_name: Some("Audit".into()),
        ..EventMeta::default()
    };
    let progress = Progress::new();
    let mut sink = Sink::new(args.format, out)?;

    // Source -> work -> sink: each account-region gets its lane in output order, then its sweep
    // as soon as one of `--concurrency` places is free.
    let (lanes, mut in_order) = order::lanes(window(args.concurrency));
    let sweeper = Sweeper {
        guard: &guard,
        meta: &meta,
        ctx: &ctx,
        progress: &progress,
    };
    let places = scopes::places(guard.ports(), accounts, regions, &progress);
    let work = async {
        // Owned here: once every sweep has ended, no lane can open and the sink's loop ends.
        let lanes = lanes;
        places
            .then(|place| async { (place, lanes.open().await) })
            .map(|(place, lane)| sweeper.sweep(place, lane))
            .buffer_unordered(args.concurrency)
            .collect::<()>()
            .await;
    };
    let write = async {
        while let Some(found) = in_order.next().await {
            sink.write(found);
        }
    };
    // The sink first: what is ready is written before more is swept.
    futures_util::future::join(write, work).await;
    progress.clear();
    sink.finish(args.apply, err)
}

/// What an audit covers, and the guard that reaches it.
struct Plan {
    guard: Guard<AwsPorts>,
    ctx: Context,
    accounts: Accounts,
    /// `None`: every region enabled in each account.
    regions: Option<Vec<String>>,
}

/// Checks the flags against the caller's identity and builds the guard; nothing is audited yet.
async fn plan(
    mut config: Config,
    args: &AuditArgs,
    retry_budget: Duration,
) -> Result<Plan, Failure> {
    if !args.apply {
        config.dry_run = true;
    }
    if let Some(account) = args
        .accounts
        .iter()
        .find(|a| !cmkguard_core::arn::is_account_id(a))
    {
        return Err((
            exit::ERROR,
            format!("`--accounts`: `{account}` is not a 12-digit account id"),
        ));
    }
    let sdk = cmkguard_aws::sdk_config()
        .await
        .map_err(|e| (exit::ERROR, e.to_string()))?;
    let sdk = cmkguard_aws::with_adaptive_retry(sdk);
    let home_region = sdk.region().map(|r| r.to_string());
    let own_account = cmkguard_aws::caller_account(&sdk).await.map_err(|e| {
        (
            exit::ERROR,
            format!("cannot find the caller's account (`sts:GetCallerIdentity`): {e}"),
        )
    })?;
    let accounts = accounts(args, &config, &own_account)?;
    let regions = regions(args, home_region.as_deref())?;
    let ports = AwsPorts::new(sdk, own_account.clone(), config.assume_role_name.clone())
        .with_retry_budget(retry_budget)
        .with_capacity(
            cmkguard_aws::accounts::ACCOUNTS_KEPT,
            args.concurrency + ACCOUNTS_AHEAD,
        );
    let ctx = Context {
        own_account,
        region: home_region.unwrap_or_default(),
        deadline: None,
        request_id: None,
    };
    Ok(Plan {
        guard: Guard::new(config, ports),
        ctx,
        accounts,
        regions,
    })
}

/// The accounts to audit: the ones given (the caller's own by default) or the organization's.
/// Any other than the caller's needs a role to assume there.
fn accounts(args: &AuditArgs, config: &Config, own_account: &str) -> Result<Accounts, Failure> {
    let listed = if args.accounts.is_empty() {
        vec![own_account.to_owned()]
    } else {
        dedup(args.accounts.clone())
    };
    if config.assume_role_name.is_none() {
        let foreign = if args.organization {
            Some(format!(
                "`--organization` covers accounts other than the caller's `{own_account}`"
            ))
        } else {
            listed
                .iter()
                .find(|a| **a != own_account)
                .map(|a| format!("account `{a}` is not the caller's `{own_account}`"))
        };
        if let Some(foreign) = foreign {
            return Err((
                exit::ERROR,
                format!(
                    "{foreign}: pass `--assume-role-name` (a role to assume in each audited account)"
                ),
            ));
        }
    }
    Ok(if args.organization {
        Accounts::Organization
    } else {
        Accounts::Listed(listed)
    })
}

/// The regions to audit in each account: the ones given (the configured region by default), or
/// `None` for every region enabled in it.
fn regions(args: &AuditArgs, home_region: Option<&str>) -> Result<Option<Vec<String>>, Failure> {
    if args.all_regions {
        return Ok(None);
    }
    if !args.regions.is_empty() {
        return Ok(Some(dedup(args.regions.clone())));
    }
    let home = home_region.ok_or_else(|| {
        (
            exit::ERROR,
            "no AWS region configured (set `AWS_REGION` or pass `--region`)".to_owned(),
        )
    })?;
    Ok(Some(vec![home.to_owned()]))
}

fn dedup(mut items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.clone()));
    items
}
