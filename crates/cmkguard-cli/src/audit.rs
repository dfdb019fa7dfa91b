//! `cmkguard audit`: every secret of the chosen accounts and regions, through the engine's sweep.

use std::io::Write;

use clap::Args;
use cmkguard_aws::AwsPorts;
use cmkguard_core::config::Config;
use cmkguard_core::event::EventMeta;
use cmkguard_core::sweep::{self, End, Limits, ScopeReport};
use cmkguard_core::{Context, Guard, Record, Scope, Verdict};
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
    /// Run the configured actions; without it nothing changes and each is listed as `dry_run`
    #[arg(long)]
    pub apply: bool,
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
    let accounts = if args.organization {
        cmkguard_aws::list_organization(&sdk).await.map_err(|e| {
            (
                exit::ERROR,
                format!("cannot list the organization's accounts: {e}"),
            )
        })?
    } else if args.accounts.is_empty() {
        vec![own_account.clone()]
    } else {
        dedup(args.accounts.clone())
    };
    if config.assume_role_name.is_none()
        && let Some(foreign) = accounts.iter().find(|a| **a != own_account)
    {
        return Err((
            exit::ERROR,
            format!(
                "account `{foreign}` is not the caller's `{own_account}`: pass `--assume-role-name` (a role to assume in each audited account)"
            ),
        ));
    }
    let ports = AwsPorts::new(sdk, own_account.clone(), config.assume_role_name.clone())
        .with_retry_budget(crate::retry_budget()?);

    let mut scopes = Vec::new();
    for account in &accounts {
        let regions = if args.all_regions {
            ports.enabled_regions(account).await.map_err(|e| {
                (
                    exit::ERROR,
                    format!("cannot list the regions enabled in `{account}`: {e}"),
                )
            })?
        } else if args.regions.is_empty() {
            vec![home_region.clone().ok_or_else(|| {
                (
                    exit::ERROR,
                    "no AWS region configured (set `AWS_REGION` or pass `--region`)".to_owned(),
                )
            })?]
        } else {
            dedup(args.regions.clone())
        };
        scopes.extend(regions.into_iter().map(|r| Scope::new(account, r)));
    }

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
    // Both callbacks reach the sink; they run one at a time (see `sweep_scopes`).
    let sink = std::sync::Mutex::new(Sink {
        printer,
        tally: Tally::default(),
        order: InOrder::new(scopes.len()),
        progress: Progress::new(scopes.len()),
        broken: None,
        stopped: Vec::new(),
    });
    let lock = || sink.lock().unwrap_or_else(|e| e.into_inner());
    sweep::sweep_scopes(
        &guard,
        &scopes,
        &meta,
        &ctx,
        Limits::default(),
        &mut |index, record| lock().record(index, record),
        &mut |index, report| lock().scope_done(&scopes[index], index, report),
    )
    .await;
    let Sink {
        printer,
        tally,
        progress,
        broken,
        stopped,
        ..
    } = sink.into_inner().unwrap_or_else(|e| e.into_inner());
    progress.clear();
    if let Some(e) = broken {
        return Err(write_failed(e));
    }
    printer.finish(&tally, args.apply).map_err(write_failed)?;

    for line in &stopped {
        let _ = writeln!(err, "cmkguard: {line}");
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
}

impl<W: Write> Sink<W> {
    fn record(&mut self, index: usize, record: Record) {
        self.tally.add(&record);
        self.progress.secret();
        let ready = self.order.record(index, record);
        self.print(ready);
    }

    fn scope_done(&mut self, scope: &Scope, index: usize, report: &ScopeReport) {
        self.progress.scope_done();
        self.tally.place(&scope.account, &scope.region);
        if let End::Transient(message) = &report.end {
            self.stopped.push(format!(
                "`{}` in `{}` stopped after {} secrets: {message}",
                scope.account, scope.region, report.progress.secrets
            ));
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
    scopes: usize,
}

/// The progress line's look: a spinner, then the counts.
const PROGRESS_TEMPLATE: &str = "{spinner} audit: {pos} secrets, {msg} account-regions done";

impl Progress {
    fn new(scopes: usize) -> Self {
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
            scopes,
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
