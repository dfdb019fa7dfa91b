//! The `cmkguard` command line: flags in, the engine's records out, an exit code.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub mod audit;
pub mod exit;
pub mod keys;
mod order;
pub mod output;
mod progress;
pub mod report;
mod scopes;
mod sink;
mod sweep;
pub mod tally;

use clap::{Args, Parser, Subcommand};
use cmkguard_aws::AwsPorts;
use cmkguard_core::config::{self, Config};
use cmkguard_core::{Context, Guard, GuardError, Record, SecretRef, Verdict};

use exit::Failure;

#[derive(Debug, Parser)]
#[command(
    name = "cmkguard",
    version,
    about = "Keeps AWS Secrets Manager secrets on customer managed KMS keys"
)]
pub struct Cli {
    #[command(flatten)]
    pub overrides: Overrides,
    #[command(subcommand)]
    pub command: Command,
}

/// The configuration's flags. Each one stands for a `CMKGUARD_*` variable, which clap reads when the
/// flag is not given; either way the value is checked by [`Config::from_lookup`], as the Lambda's.
#[derive(Debug, Args, Default)]
pub struct Overrides {
    /// Comma list of `tag`, `notify`, `remediate`, `rotate`, `securityhub`, or `none`
    #[arg(long, global = true, env = config::ACTIONS)]
    pub actions: Option<String>,
    /// Account ids (or `*`) where `remediate` may run
    #[arg(long, global = true, env = config::REMEDIATE_ACCOUNTS)]
    pub remediate_accounts: Option<String>,
    /// Alias of the designated key, resolved in each secret's region
    #[arg(long, global = true, env = config::KEY_ALIAS)]
    pub key_alias: Option<String>,
    /// Comma list of allowed customer managed key ARNs
    #[arg(long, global = true, env = config::ALLOWED_KEY_ARNS)]
    pub allowed_key_arns: Option<String>,
    /// Tag key that exempts a secret when set to `true`
    #[arg(long, global = true, env = config::EXEMPT_TAG)]
    pub exempt_tag: Option<String>,
    /// SNS topic for `notify`
    #[arg(long, global = true, env = config::SNS_TOPIC_ARN)]
    pub sns_topic_arn: Option<String>,
    /// Decide and log what would be done, change nothing
    // A switch whose variable says `true` or `false`: the text goes to `Config::from_lookup`, so
    // a bad value is named as the variable's, whichever gave it.
    #[arg(long, global = true, env = config::DRY_RUN, value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub dry_run: Option<String>,
    /// Role assumed in a secret's account when it is not the caller's
    #[arg(long, global = true, env = config::ASSUME_ROLE_NAME)]
    pub assume_role_name: Option<String>,
    /// Read each version's keys (`ListSecretVersionIds`) of secrets on a customer managed key,
    /// to find moves made by others
    #[arg(long, global = true, env = config::CHECK_VERSIONS, value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub check_versions: Option<String>,
    /// Review each customer managed key's policy and grants: `off`, `report` or `enforce`
    #[arg(long, global = true, env = config::KEY_POLICY, value_name = "MODE")]
    pub key_policy: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Lambda's handler on one EventBridge event and print its audit records
    HandleEvent {
        /// The event file; `-` or nothing reads standard input
        file: Option<PathBuf>,
    },
    /// Check one secret (name or ARN) and print its audit record
    Check {
        secret_id: String,
        /// The secret's region (default: the configured AWS region, or the ARN's)
        #[arg(long)]
        region: Option<String>,
    },
    /// Audit every secret of the chosen accounts and regions (changes nothing without `--apply`)
    Audit(audit::AuditArgs),
}

impl Overrides {
    /// The value of `variable`: its flag's (or, through clap, the variable's); the environment's
    /// for a variable without a flag (checked all the same).
    fn get(&self, variable: &str) -> Option<String> {
        let flag = match variable {
            config::ACTIONS => &self.actions,
            config::REMEDIATE_ACCOUNTS => &self.remediate_accounts,
            config::KEY_ALIAS => &self.key_alias,
            config::ALLOWED_KEY_ARNS => &self.allowed_key_arns,
            config::EXEMPT_TAG => &self.exempt_tag,
            config::SNS_TOPIC_ARN => &self.sns_topic_arn,
            config::DRY_RUN => &self.dry_run,
            config::ASSUME_ROLE_NAME => &self.assume_role_name,
            config::CHECK_VERSIONS => &self.check_versions,
            config::KEY_POLICY => &self.key_policy,
            _ => return std::env::var(variable).ok(),
        };
        flag.clone()
    }

    /// The configuration: flags over the environment.
    pub fn config(&self) -> Result<Config, config::ConfigError> {
        Config::from_lookup(|name| self.get(name))
    }
}

/// Runs one command; records go to `out`, one line of explanation for people to `err`.
pub async fn run(
    cli: Cli,
    input: &mut impl Read,
    out: &mut impl Write,
    err: &mut impl Write,
) -> ExitCode {
    let code = match run_inner(cli, input, out, err).await {
        Ok(code) => code,
        Err((code, message)) => {
            let _ = writeln!(err, "cmkguard: {message}");
            code
        }
    };
    ExitCode::from(code)
}

async fn run_inner(
    cli: Cli,
    input: &mut impl Read,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<u8, Failure> {
    let config = cli
        .overrides
        .config()
        .map_err(|e| (exit::ERROR, e.to_string()))?;
    // The SDK's own variables are checked at start too, before any input is read.
    cmkguard_aws::attempt_timeout(|name| std::env::var(name).ok())
        .map_err(|e| (exit::ERROR, e.to_string()))?;
    let retry_budget = retry_budget()?;
    match cli.command {
        Command::Audit(args) => audit::run(config, args, retry_budget, out, err).await,
        Command::HandleEvent { file } => {
            let bytes = read_input(file.as_deref(), input)?;
            handle_event(config, retry_budget, &bytes, out).await
        }
        Command::Check { secret_id, region } => {
            check(config, retry_budget, secret_id, region, out, err).await
        }
    }
}

/// `handle-event`: the handler's records, exit 1 when one is a failure or an AWS failure stopped
/// it.
async fn handle_event(
    config: Config,
    retry_budget: Duration,
    bytes: &[u8],
    out: &mut impl Write,
) -> Result<u8, Failure> {
    // Unreadable input stops here, before any AWS call.
    let event: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| (exit::ERROR, format!("unreadable event: {e}")))?;
    cmkguard_core::event::read(&event).map_err(|e| (exit::ERROR, e.to_string()))?;

    let (guard, ctx) = connect(config, retry_budget).await?;
    match guard.handle(&event, &ctx).await {
        Ok(records) => {
            write_records(out, &records)?;
            Ok(if records.iter().any(Record::is_failure) {
                exit::FINDING
            } else {
                exit::OK
            })
        }
        Err(e) => {
            write_records(out, e.records())?;
            Err((exit::FINDING, guard_error(&e)))
        }
    }
}

/// `check`: one secret's record; exit 0 when `compliant` or `exempt`, 1 for another finding, 2
/// when it could not be checked.
async fn check(
    config: Config,
    retry_budget: Duration,
    secret_id: String,
    region: Option<String>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<u8, Failure> {
    let (guard, ctx) = connect(config, retry_budget).await?;
    let arn = cmkguard_core::arn::Arn::secret(&secret_id);
    if secret_id.starts_with("arn:") && arn.is_none() {
        return Err((
            exit::ERROR,
            format!("`{secret_id}` is not a Secrets Manager secret ARN"),
        ));
    }
    let target = SecretRef {
        account: arn
            .as_ref()
            .map_or(ctx.own_account.clone(), |a| a.account.to_owned()),
        region: region
            .or(arn.as_ref().map(|a| a.region.to_owned()))
            .unwrap_or(ctx.region.clone()),
        secret_id: secret_id.clone(),
    };
    let record = match guard.check(&target, &ctx).await {
        Ok(record) => record,
        Err(e) => {
            write_records(out, e.records())?;
            return Err((exit::ERROR, guard_error(&e)));
        }
    };
    write_records(out, std::slice::from_ref(&record))?;
    match record.verdict {
        Verdict::Compliant | Verdict::Exempt => Ok(exit::OK),
        Verdict::NotFound | Verdict::Error | Verdict::Ignored => {
            let _ = writeln!(
                err,
                "cmkguard: {}: {}",
                record.reason,
                record
                    .detail
                    .as_deref()
                    .unwrap_or("the secret could not be checked")
            );
            Ok(exit::ERROR)
        }
        Verdict::NonCompliant | Verdict::Managed => Ok(exit::FINDING),
    }
}

fn guard_error(e: &GuardError) -> String {
    format!("{e} (nothing was lost: run it again)")
}

fn read_input(file: Option<&std::path::Path>, stdin: &mut impl Read) -> Result<Vec<u8>, Failure> {
    match file {
        None => read_all(stdin, "standard input"),
        Some(path) if path.as_os_str() == "-" => read_all(stdin, "standard input"),
        Some(path) => std::fs::read(path).map_err(|e| {
            (
                exit::ERROR,
                format!("cannot read `{}`: {e}", path.display()),
            )
        }),
    }
}

fn read_all(reader: &mut impl Read, what: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| (exit::ERROR, format!("cannot read {what}: {e}")))?;
    Ok(bytes)
}

fn write_records(out: &mut impl Write, records: &[Record]) -> Result<(), Failure> {
    for record in records {
        writeln!(out, "{}", record.to_json_line()).map_err(exit::write_failed)?;
    }
    Ok(())
}

/// How long each AWS call retries a transient failure (`CMKGUARD_RETRY_BUDGET_MS`).
fn retry_budget() -> Result<Duration, Failure> {
    cmkguard_aws::retry_budget(|name| std::env::var(name).ok())
        .map_err(|e| (exit::ERROR, e.to_string()))
}

/// Builds the AWS side once: the SDK configuration, the caller's account, the guard.
async fn connect(
    config: Config,
    retry_budget: Duration,
) -> Result<(Guard<AwsPorts>, Context), Failure> {
    let sdk = cmkguard_aws::sdk_config()
        .await
        .map_err(|e| (exit::ERROR, e.to_string()))?;
    let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
        (
            exit::ERROR,
            "no AWS region configured (set `AWS_REGION` or pass `--region`)".to_owned(),
        )
    })?;
    let own_account = cmkguard_aws::caller_account(&sdk).await.map_err(|e| {
        (
            exit::FINDING,
            format!("cannot find the caller's account (`sts:GetCallerIdentity`): {e}"),
        )
    })?;
    let ports = AwsPorts::new(sdk, own_account.clone(), config.assume_role_name.clone())
        .with_retry_budget(retry_budget);
    let ctx = Context {
        own_account,
        region,
        deadline: None,
        request_id: None,
    };
    Ok((Guard::new(config, ports), ctx))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["cmkguard"];
        argv.extend(args);
        Cli::try_parse_from(argv).unwrap()
    }

    #[test]
    fn each_flag_gives_its_variable() {
        let command = Cli::command();
        let flags: Vec<_> = command
            .get_arguments()
            .filter_map(|arg| Some((arg.get_long()?, arg.get_env()?.to_str()?)))
            .collect();
        // Every variable has its flag, but the Lambda's sweep (the audit has its own flags).
        let mut named: Vec<&str> = flags.iter().map(|(_, variable)| *variable).collect();
        named.sort_unstable();
        let mut expected: Vec<&str> = config::VARIABLES
            .into_iter()
            .filter(|v| *v != config::SWEEP_ACCOUNTS)
            .collect();
        expected.sort_unstable();
        assert_eq!(named, expected);
        for (long, variable) in flags {
            let cli = parse(&[&format!("--{long}=given"), "handle-event"]);
            assert_eq!(
                cli.overrides.get(variable).as_deref(),
                Some("given"),
                "--{long}"
            );
        }
    }

    #[test]
    fn a_switch_alone_is_true_and_takes_no_next_word() {
        let cli = parse(&["--dry-run", "--check-versions", "check", "app/db"]);
        let config = cli.overrides.config().unwrap();
        assert!(config.dry_run && config.check_versions);
        assert!(matches!(cli.command, Command::Check { .. }));
        let cli = parse(&["--dry-run=false", "handle-event"]);
        assert!(!cli.overrides.config().unwrap().dry_run);
        let cli = parse(&["--dry-run=yes", "handle-event"]);
        let error = cli.overrides.config().unwrap_err().to_string();
        assert!(error.contains("`CMKGUARD_DRY_RUN`"), "{error}");
    }
}
