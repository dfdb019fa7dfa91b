//! `cmkguard audit`: every secret of the chosen accounts and regions, through the engine's sweep.

use std::collections::HashMap;
use std::io::Write;

use clap::Args;
use cmkguard_aws::AwsPorts;
use cmkguard_core::config::Config;
use cmkguard_core::event::EventMeta;
use cmkguard_core::sweep::{self, End, Limits, ScopeReport};
use cmkguard_core::{Context, Guard, Record, Scope, Verdict};
use futures_util::stream::{self, BoxStream, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{Format, InOrder, Printer, Tally};
use crate::{Failure, exit};

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

/// Accounts whose regions are being listed (`AssumeRole`, then `ListRegions`) ahead of the sweep.
const ACCOUNTS_AHEAD: usize = 32;

/// How far past the first unfinished account-region others may start: bounds the records held
/// back for the fixed output order.
fn window(concurrency: usize) -> usize {
    concurrency * 4
}

pub async fn run(
    mut config: Config,
    args: AuditArgs,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<u8, Failure> {
    if !args.apply {
        config.dry_run = true;
    }
    for account in &args.accounts {
        if !cmkguard_core::arn::is_account_id(account) {
            return Err((
                exit::ERROR,
                format!("`--accounts`: `{account}` is not a 12-digit account id"),
            ));
        }
    }
    let concurrency = args.concurrency;
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
    let listed = if args.accounts.is_empty() {
        vec![own_account.clone()]
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
    let fixed_regions = if args.all_regions {
        None
    } else if args.regions.is_empty() {
        Some(vec![home_region.clone().ok_or_else(|| {
            (
                exit::ERROR,
                "no AWS region configured (set `AWS_REGION` or pass `--region`)".to_owned(),
            )
        })?])
    } else {
        Some(dedup(args.regions.clone()))
    };
    let ports = AwsPorts::new(sdk, own_account.clone(), config.assume_role_name.clone())
        .with_retry_budget(crate::retry_budget()?)
        .with_capacity(
            cmkguard_aws::accounts::ACCOUNTS_KEPT,
            concurrency + ACCOUNTS_AHEAD,
        );
    let guard = Guard::new(config, ports);
    let ctx = Context {
        own_account,
        region: home_region.unwrap_or_default(),
        deadline: None,
        request_id: None,
    };
    let meta = EventMeta {
        event_name: Some("Audit".into()),
        ..EventMeta::default()
    };

    let write_failed = |e: std::io::Error| (exit::ERROR, format!("cannot write output: {e}"));
    let printer = Printer::new(args.format, &mut *out).map_err(write_failed)?;
    let sink = std::sync::Mutex::new(Sink {
        printer,
        tally: Tally::default(),
        order: InOrder::new(),
        progress: Progress::new(),
        broken: None,
        stopped: Vec::new(),
        unlisted: Vec::new(),
        regions_left: HashMap::new(),
    });
    let lock = || sink.lock().unwrap_or_else(|e| e.into_inner());
    // Wakes the producer when the first unfinished account-region moves on.
    let moved = tokio::sync::Notify::new();

    // The accounts, as they become known: the organization's page by page, or the ones given.
    let accounts: BoxStream<'_, Result<String, String>> = if args.organization {
        guard
            .ports()
            .organization_pages()
            .flat_map(|page| {
                let items: Vec<Result<String, String>> = match page {
                    Ok(ids) => ids.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(format!("cannot list the organization's accounts: {e}"))],
                };
                stream::iter(items)
            })
            .boxed()
    } else {
        stream::iter(listed.into_iter().map(Ok)).boxed()
    };
    let regions_of = |account: String| {
        let fixed = fixed_regions.clone();
        let guard = &guard;
        async move {
            let regions =
                match fixed {
                    Some(regions) => Ok(regions),
                    None => guard.ports().enabled_regions(&account).await.map_err(|e| {
                        format!("cannot list the regions enabled in `{account}`: {e}")
                    }),
                };
            (account, regions)
        }
    };

    // Account-regions go from the producer to the sweep as they are found; each starts as soon
    // as a place is free, within the window of the output order.
    let (tx, rx) = tokio::sync::mpsc::channel::<Scope>(1);
    let produce = async {
        let resolved = accounts
            .map(|account| {
                let regions_of = &regions_of;
                async move {
                    match account {
                        Ok(account) => Ok(regions_of(account).await),
                        Err(problem) => Err(problem),
                    }
                }
            })
            .buffered(ACCOUNTS_AHEAD);
        let mut resolved = std::pin::pin!(resolved);
        let (mut next, mut accounts) = (0usize, 0usize);
        while let Some(item) = resolved.next().await {
            let (account, regions) = match item {
                Err(problem) => {
                    lock().unlisted.push(problem);
                    break;
                }
                Ok((account, Err(problem))) => {
                    lock().unlisted.push(problem);
                    guard.ports().release(&account);
                    continue;
                }
                Ok((account, Ok(regions))) => (account, regions),
            };
            accounts += 1;
            if regions.is_empty() {
                guard.ports().release(&account);
                continue;
            }
            lock().expect(&account, regions.len());
            for region in regions {
                loop {
                    let notified = moved.notified();
                    if next < lock().order.head() + window(concurrency) {
                        break;
                    }
                    notified.await;
                }
                if tx.send(Scope::new(&account, region)).await.is_err() {
                    return;
                }
                next += 1;
            }
        }
        if args.organization && accounts == 0 {
            let mut sink = lock();
            if sink.unlisted.is_empty() {
                sink.unlisted
                    .push("`ListAccounts` found no active account in the organization".into());
            }
        }
        drop(tx);
    };
    let scopes = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|s| (s, rx)) });
    let limits = Limits {
        scopes: concurrency,
        ..Limits::default()
    };
    let mut emit = |index, record| lock().record(index, record);
    let mut done = |index, scope: &Scope, report: &ScopeReport| {
        lock().scope_done(scope, index, report, guard.ports());
        moved.notify_waiters();
    };
    let sweep = sweep::sweep_stream(&guard, scopes, &meta, &ctx, limits, &mut emit, &mut done);
    futures_util::future::join(produce, sweep).await;

    let Sink {
        printer,
        tally,
        progress,
        broken,
        stopped,
        unlisted,
        ..
    } = sink.into_inner().unwrap_or_else(|e| e.into_inner());
    progress.clear();
    if let Some(e) = broken {
        return Err(write_failed(e));
    }
    if tally.places > 0 || unlisted.is_empty() {
        printer.finish(&tally, args.apply).map_err(write_failed)?;
    }

    for line in &stopped {
        let _ = writeln!(err, "cmkguard: {line}");
    }
    if let Some((last, before)) = unlisted.split_last() {
        for line in before {
            let _ = writeln!(err, "cmkguard: {line}");
        }
        return Err((exit::ERROR, last.clone()));
    }
    if !stopped.is_empty() {
        return Err((
            exit::ERROR,
            "a transient AWS failure outlasted the retries; the audit is incomplete (run it again)"
                .into(),
        ));
    }
    if tally.failures > 0 {
        let _ = writeln!(
            err,
            "cmkguard: {} records are `error` or have a `failed` action",
            tally.failures
        );
        return Ok(exit::ERROR);
    }
    let flagged = tally.total() - tally.count(Verdict::Compliant) - tally.count(Verdict::Exempt);
    Ok(if flagged > 0 { exit::FINDING } else { exit::OK })
}

struct Sink<W: Write> {
    printer: Printer<W>,
    tally: Tally,
    order: InOrder,
    progress: Progress,
    /// The first write error; nothing more is written after it.
    broken: Option<std::io::Error>,
    /// Account-regions a transient failure stopped.
    stopped: Vec<String>,
    /// Accounts (or the organization) that could not be listed: the audit is incomplete.
    unlisted: Vec<String>,
    /// Per account being audited, its regions not done yet; at none, its clients are released.
    regions_left: HashMap<String, usize>,
}

impl<W: Write> Sink<W> {
    fn expect(&mut self, account: &str, regions: usize) {
        self.regions_left.insert(account.to_owned(), regions);
        self.progress.scopes_found(regions);
    }

    fn record(&mut self, index: usize, record: Record) {
        self.tally.add(&record);
        self.progress.secret();
        let ready = self.order.record(index, record);
        self.print(ready);
    }

    fn scope_done(&mut self, scope: &Scope, index: usize, report: &ScopeReport, ports: &AwsPorts) {
        self.progress.scope_done();
        self.tally.place(&scope.account, &scope.region);
        if let End::Transient(message) = &report.end {
            self.stopped.push(format!(
                "`{}` in `{}` stopped after {} secrets: {message}",
                scope.account, scope.region, report.progress.secrets
            ));
        }
        if let Some(left) = self.regions_left.get_mut(&scope.account) {
            *left -= 1;
            if *left == 0 {
                self.regions_left.remove(&scope.account);
                ports.release(&scope.account);
            }
        }
        let ready = self.order.scope_done(index);
        self.print(ready);
    }

    fn print(&mut self, records: Vec<Record>) {
        for record in records {
            if self.broken.is_none()
                && let Err(e) = self.printer.record(&record)
            {
                self.broken = Some(e);
            }
        }
    }
}

fn dedup(mut items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.clone()));
    items
}

/// A one-line progress count on standard error, only when it is a terminal.
struct Progress {
    /// Its position counts the secrets; its message, the account-regions done.
    bar: ProgressBar,
    scopes_done: usize,
    /// Account-regions found so far (an organization's accounts arrive page by page).
    scopes: usize,
}

/// The progress line's look: a spinner, then the counts.
const PROGRESS_TEMPLATE: &str = "{spinner} audit: {pos} secrets, {msg} account-regions done";

impl Progress {
    fn new() -> Self {
        // Hidden (nothing written) when standard error is not a terminal; redrawn at most 10
        // times a second.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
        // The template is fixed (a unit test parses it); were it wrong, the default look would do.
        if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
            bar.set_style(style);
        }
        let progress = Progress {
            bar,
            scopes_done: 0,
            scopes: 0,
        };
        progress.show_scopes();
        progress
    }

    fn secret(&self) {
        self.bar.inc(1);
    }

    fn scope_done(&mut self) {
        self.scopes_done += 1;
        self.show_scopes();
    }

    fn scopes_found(&mut self, scopes: usize) {
        self.scopes += scopes;
        self.show_scopes();
    }

    fn show_scopes(&self) {
        if !self.bar.is_hidden() {
            self.bar
                .set_message(format!("{}/{}", self.scopes_done, self.scopes));
        }
    }

    fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_template_parses() {
        assert!(ProgressStyle::with_template(PROGRESS_TEMPLATE).is_ok());
    }
}
