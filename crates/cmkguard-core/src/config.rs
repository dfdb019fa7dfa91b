//! The configuration of both binaries, read once from the environment (or flags) and validated.

use std::collections::BTreeSet;

use crate::arn::{Arn, is_account_id};

pub const ACTIONS: &str = "CMKGUARD_ACTIONS";
pub const REMEDIATE_ACCOUNTS: &str = "CMKGUARD_REMEDIATE_ACCOUNTS";
pub const KEY_ALIAS: &str = "CMKGUARD_KEY_ALIAS";
pub const ALLOWED_KEY_ARNS: &str = "CMKGUARD_ALLOWED_KEY_ARNS";
pub const EXEMPT_TAG: &str = "CMKGUARD_EXEMPT_TAG";
pub const SNS_TOPIC_ARN: &str = "CMKGUARD_SNS_TOPIC_ARN";
pub const DRY_RUN: &str = "CMKGUARD_DRY_RUN";
pub const ASSUME_ROLE_NAME: &str = "CMKGUARD_ASSUME_ROLE_NAME";
pub const SWEEP_ACCOUNTS: &str = "CMKGUARD_SWEEP_ACCOUNTS";
pub const CHECK_VERSIONS: &str = "CMKGUARD_CHECK_VERSIONS";
pub const KEY_POLICY: &str = "CMKGUARD_KEY_POLICY";

/// Every variable the guard reads, for `--help` texts and tests.
pub const VARIABLES: [&str; 11] = [
    ACTIONS,
    REMEDIATE_ACCOUNTS,
    KEY_ALIAS,
    ALLOWED_KEY_ARNS,
    EXEMPT_TAG,
    SNS_TOPIC_ARN,
    DRY_RUN,
    ASSUME_ROLE_NAME,
    SWEEP_ACCOUNTS,
    CHECK_VERSIONS,
    KEY_POLICY,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Tag,
    Notify,
    Remediate,
    /// After a verified move of a secret with rotation enabled, `RotateSecret` once.
    Rotate,
    /// Imports the finding into AWS Security Hub.
    SecurityHub,
}

/// Serialized as its `as_str`: the wire string is written once.
impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Tag,
        Action::Notify,
        Action::Remediate,
        Action::Rotate,
        Action::SecurityHub,
    ];

    /// The action named `word` in `CMKGUARD_ACTIONS`.
    pub fn parse(word: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == word)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Tag => "tag",
            Action::Notify => "notify",
            Action::Remediate => "remediate",
            Action::Rotate => "rotate",
            Action::SecurityHub => "securityhub",
        }
    }
}

/// `CMKGUARD_KEY_POLICY`: what the review of a key's policy and grants does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyPolicyMode {
    /// No key policy is read.
    Off,
    /// The record carries the key's findings; the verdict is decided as without them.
    #[default]
    Report,
    /// A finding (other than `key-policy-unreadable`) makes the secret non-compliant, and no
    /// secret is moved onto a designated key with a finding.
    Enforce,
}

impl KeyPolicyMode {
    pub const ALL: [KeyPolicyMode; 3] = [
        KeyPolicyMode::Off,
        KeyPolicyMode::Report,
        KeyPolicyMode::Enforce,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyPolicyMode::Off => "off",
            KeyPolicyMode::Report => "report",
            KeyPolicyMode::Enforce => "enforce",
        }
    }

    pub fn parse(word: &str) -> Option<KeyPolicyMode> {
        KeyPolicyMode::ALL.into_iter().find(|m| m.as_str() == word)
    }
}

/// Which accounts opted in to remediation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccountSet {
    #[default]
    None,
    All,
    Some(BTreeSet<String>),
}

impl AccountSet {
    pub fn contains(&self, account: &str) -> bool {
        match self {
            AccountSet::None => false,
            AccountSet::All => true,
            AccountSet::Some(ids) => ids.contains(account),
        }
    }
}

/// The accounts the Lambda's scheduled sweep covers, in the function's region.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SweepAccounts {
    /// The function's own account.
    #[default]
    Own,
    /// These accounts (12-digit ids, sorted).
    Listed(BTreeSet<String>),
    /// Every active account of the organization (`organizations:ListAccounts`).
    Organization,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub actions: BTreeSet<Action>,
    pub remediate_accounts: AccountSet,
    pub key_alias: String,
    /// `None` when unset: any customer managed key is allowed.
    pub allowed_key_arns: Option<BTreeSet<String>>,
    pub exempt_tag: String,
    pub sns_topic_arn: Option<String>,
    pub dry_run: bool,
    pub assume_role_name: Option<String>,
    pub sweep_accounts: SweepAccounts,
    /// `CMKGUARD_CHECK_VERSIONS`: read each version's keys (`ListSecretVersionIds`) of the
    /// secrets on a customer managed key, to find moves made by others.
    pub check_versions: bool,
    /// `CMKGUARD_KEY_POLICY`: whether and how keys' policies and grants are reviewed.
    pub key_policy: KeyPolicyMode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            actions: BTreeSet::from([Action::Tag]),
            remediate_accounts: AccountSet::None,
            key_alias: "alias/cmkguard/secrets".into(),
            allowed_key_arns: None,
            exempt_tag: "cmkguard:exempt".into(),
            sns_topic_arn: None,
            dry_run: false,
            assume_role_name: None,
            sweep_accounts: SweepAccounts::Own,
            check_versions: false,
            key_policy: KeyPolicyMode::Report,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{variable}`: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn invalid(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

/// Comma list items, trimmed, empty items dropped.
fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (the CLI layers its flags over the environment).
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut config = Config::default();

        if let Some(value) = get(ACTIONS) {
            config.actions = parse_actions(&value)?;
        }
        if let Some(value) = get(REMEDIATE_ACCOUNTS) {
            config.remediate_accounts = parse_accounts(&value)?;
        }
        if let Some(value) = get(KEY_ALIAS) {
            if !value.starts_with("alias/") || value.len() <= "alias/".len() {
                return Err(invalid(
                    KEY_ALIAS,
                    format!("`{value}` must start with `alias/`"),
                ));
            }
            if value.starts_with("alias/aws/") {
                return Err(invalid(
                    KEY_ALIAS,
                    format!("`{value}` is reserved for AWS managed keys"),
                ));
            }
            config.key_alias = value;
        }
        if let Some(value) = get(ALLOWED_KEY_ARNS) {
            let mut arns = BTreeSet::new();
            for arn in items(&value) {
                if Arn::kms_key(arn).is_none() {
                    return Err(invalid(
                        ALLOWED_KEY_ARNS,
                        format!("`{arn}` is not a KMS key ARN"),
                    ));
                }
                arns.insert(arn.to_owned());
            }
            if arns.is_empty() {
                return Err(invalid(ALLOWED_KEY_ARNS, "no key ARN given"));
            }
            config.allowed_key_arns = Some(arns);
        }
        if let Some(value) = get(EXEMPT_TAG) {
            config.exempt_tag = value;
        }
        if let Some(value) = get(SNS_TOPIC_ARN) {
            if !Arn::parse(&value).is_some_and(|a| a.service == "sns" && is_account_id(a.account)) {
                return Err(invalid(
                    SNS_TOPIC_ARN,
                    format!("`{value}` is not an SNS topic ARN"),
                ));
            }
            config.sns_topic_arn = Some(value);
        }
        if let Some(value) = get(DRY_RUN) {
            config.dry_run = parse_bool(DRY_RUN, &value)?;
        }
        if let Some(value) = get(CHECK_VERSIONS) {
            config.check_versions = parse_bool(CHECK_VERSIONS, &value)?;
        }
        if let Some(value) = get(KEY_POLICY) {
            config.key_policy = KeyPolicyMode::parse(&value).ok_or_else(|| {
                invalid(
                    KEY_POLICY,
                    format!("`{value}` is not `off`, `report` or `enforce`"),
                )
            })?;
        }
        if let Some(value) = get(ASSUME_ROLE_NAME) {
            let valid = value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b));
            if !valid {
                return Err(invalid(
                    ASSUME_ROLE_NAME,
                    format!("`{value}` is not an IAM role name"),
                ));
            }
            config.assume_role_name = Some(value);
        }

        if let Some(value) = get(SWEEP_ACCOUNTS) {
            config.sweep_accounts = parse_sweep_accounts(&value)?;
        }
        // Which of the listed accounts is the function's own is known only at the first
        // invocation; two accounts cannot both be.
        let foreign = match &config.sweep_accounts {
            SweepAccounts::Own => None,
            SweepAccounts::Organization => Some("`organization` covers other accounts"),
            SweepAccounts::Listed(ids) if ids.len() > 1 => {
                Some("accounts other than the function's own are listed")
            }
            SweepAccounts::Listed(_) => None,
        };
        if let (Some(why), None) = (foreign, &config.assume_role_name) {
            return Err(invalid(
                SWEEP_ACCOUNTS,
                format!(
                    "{why}: set `{ASSUME_ROLE_NAME}` to the role the sweep assumes in each of them"
                ),
            ));
        }

        if config.actions.contains(&Action::Notify) && config.sns_topic_arn.is_none() {
            return Err(invalid(
                SNS_TOPIC_ARN,
                format!("`notify` is in `{ACTIONS}` but no topic is set"),
            ));
        }
        Ok(config)
    }

    pub fn acts(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }
}

fn parse_bool(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(invalid(
            variable,
            format!("`{other}` is not `true` or `false`"),
        )),
    }
}

fn parse_actions(value: &str) -> Result<BTreeSet<Action>, ConfigError> {
    if value == "none" {
        return Ok(BTreeSet::new());
    }
    let mut actions = BTreeSet::new();
    for item in items(value) {
        if item == "none" {
            return Err(invalid(
                ACTIONS,
                "`none` cannot be combined with other actions",
            ));
        }
        let Some(action) = Action::parse(item) else {
            let known: Vec<String> = Action::ALL
                .iter()
                .map(|a| format!("`{}`", a.as_str()))
                .collect();
            return Err(invalid(
                ACTIONS,
                format!(
                    "unknown action `{item}` (expected {} or `none`)",
                    known.join(", ")
                ),
            ));
        };
        actions.insert(action);
    }
    if actions.is_empty() {
        return Err(invalid(
            ACTIONS,
            "no action given (use `none` to only decide and log)",
        ));
    }
    Ok(actions)
}

fn parse_sweep_accounts(value: &str) -> Result<SweepAccounts, ConfigError> {
    if value == "organization" {
        return Ok(SweepAccounts::Organization);
    }
    let mut ids = BTreeSet::new();
    for id in items(value) {
        if !is_account_id(id) {
            return Err(invalid(
                SWEEP_ACCOUNTS,
                format!("`{id}` is not a 12-digit account id (or use `organization` alone)"),
            ));
        }
        ids.insert(id.to_owned());
    }
    if ids.is_empty() {
        return Err(invalid(SWEEP_ACCOUNTS, "no account id given"));
    }
    Ok(SweepAccounts::Listed(ids))
}

fn parse_accounts(value: &str) -> Result<AccountSet, ConfigError> {
    if value == "*" {
        return Ok(AccountSet::All);
    }
    let mut ids = BTreeSet::new();
    for id in items(value) {
        if !is_account_id(id) {
            return Err(invalid(
                REMEDIATE_ACCOUNTS,
                format!("`{id}` is not a 12-digit account id"),
            ));
        }
        ids.insert(id.to_owned());
    }
    Ok(if ids.is_empty() {
        AccountSet::None
    } else {
        AccountSet::Some(ids)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = read(&[]).unwrap();
        assert_eq!(config.actions, BTreeSet::from([Action::Tag]));
        assert_eq!(config.key_alias, "alias/cmkguard/secrets");
        assert_eq!(config.exempt_tag, "cmkguard:exempt");
        assert_eq!(config.remediate_accounts, AccountSet::None);
        assert!(!config.dry_run);
        assert!(config.allowed_key_arns.is_none());
        assert_eq!(config.key_policy, KeyPolicyMode::Report);
    }

    #[test]
    fn reads_every_variable() {
        let config = read(&[
            (ACTIONS, "tag, notify,remediate"),
            (REMEDIATE_ACCOUNTS, "123456789012,111122223333"),
            (KEY_ALIAS, "alias/mine"),
            (
                ALLOWED_KEY_ARNS,
                "arn:aws:kms:us-east-1:123456789012:key/abc",
            ),
            (EXEMPT_TAG, "skip"),
            (SNS_TOPIC_ARN, "arn:aws:sns:us-east-1:123456789012:cmkguard"),
            (DRY_RUN, "true"),
            (ASSUME_ROLE_NAME, "cmkguard-member"),
            (KEY_POLICY, "enforce"),
        ])
        .unwrap();
        assert_eq!(config.actions.len(), 3);
        assert_eq!(config.key_policy, KeyPolicyMode::Enforce);
        assert_eq!(
            read(&[(KEY_POLICY, "off")]).unwrap().key_policy,
            KeyPolicyMode::Off
        );
        assert!(config.remediate_accounts.contains("111122223333"));
        assert!(!config.remediate_accounts.contains("444455556666"));
        assert!(config.dry_run);
        assert_eq!(config.assume_role_name.as_deref(), Some("cmkguard-member"));
        assert!(
            read(&[(REMEDIATE_ACCOUNTS, "*")])
                .unwrap()
                .remediate_accounts
                .contains("444455556666")
        );
        assert!(read(&[(ACTIONS, "none")]).unwrap().actions.is_empty());
    }

    #[test]
    fn the_sweep_covers_the_own_account_a_list_or_the_organization() {
        assert_eq!(read(&[]).unwrap().sweep_accounts, SweepAccounts::Own);
        let role = (ASSUME_ROLE_NAME, "cmkguard-member");
        assert_eq!(
            read(&[(SWEEP_ACCOUNTS, "organization"), role])
                .unwrap()
                .sweep_accounts,
            SweepAccounts::Organization
        );
        assert_eq!(
            read(&[
                (SWEEP_ACCOUNTS, " 111122223333, 123456789012,111122223333"),
                role
            ])
            .unwrap()
            .sweep_accounts,
            SweepAccounts::Listed(BTreeSet::from([
                "111122223333".to_owned(),
                "123456789012".to_owned()
            ]))
        );
        // One account needs no role when it is the function's own (checked at the first
        // invocation, which knows the account).
        assert_eq!(
            read(&[(SWEEP_ACCOUNTS, "123456789012")])
                .unwrap()
                .sweep_accounts,
            SweepAccounts::Listed(BTreeSet::from(["123456789012".to_owned()]))
        );
        let err = read(&[(SWEEP_ACCOUNTS, "organization")]).unwrap_err();
        assert!(err.to_string().contains(ASSUME_ROLE_NAME), "{err}");
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let topic = (SNS_TOPIC_ARN, "arn:aws:sns:us-east-1:123456789012:t");
        for (vars, variable) in [
            (vec![(ACTIONS, "tag,explode")], ACTIONS),
            (vec![(ACTIONS, ",")], ACTIONS),
            (vec![(ACTIONS, "none,tag")], ACTIONS),
            (vec![(ACTIONS, "notify")], SNS_TOPIC_ARN),
            (vec![(REMEDIATE_ACCOUNTS, "12345")], REMEDIATE_ACCOUNTS),
            (
                vec![(REMEDIATE_ACCOUNTS, "1234567890123")],
                REMEDIATE_ACCOUNTS,
            ),
            (
                vec![(REMEDIATE_ACCOUNTS, "12345678901a")],
                REMEDIATE_ACCOUNTS,
            ),
            (vec![(KEY_ALIAS, "cmkguard/secrets")], KEY_ALIAS),
            (vec![(KEY_ALIAS, "alias/aws/secretsmanager")], KEY_ALIAS),
            (
                vec![(
                    ALLOWED_KEY_ARNS,
                    "arn:aws:kms:us-east-1:123456789012:alias/x",
                )],
                ALLOWED_KEY_ARNS,
            ),
            (
                vec![(ALLOWED_KEY_ARNS, "1234abcd-12ab-34cd-56ef-1234567890ab")],
                ALLOWED_KEY_ARNS,
            ),
            (
                vec![(SNS_TOPIC_ARN, "arn:aws:sqs:us-east-1:123456789012:q")],
                SNS_TOPIC_ARN,
            ),
            (vec![(DRY_RUN, "yes")], DRY_RUN),
            (vec![(KEY_POLICY, "Enforce")], KEY_POLICY),
            (vec![(KEY_POLICY, "strict")], KEY_POLICY),
            (vec![(DRY_RUN, "TRUE"), topic], DRY_RUN),
            (
                vec![(ASSUME_ROLE_NAME, "role name with spaces")],
                ASSUME_ROLE_NAME,
            ),
            (vec![(SWEEP_ACCOUNTS, "12345")], SWEEP_ACCOUNTS),
            (vec![(SWEEP_ACCOUNTS, "Organization")], SWEEP_ACCOUNTS),
            (vec![(SWEEP_ACCOUNTS, ",")], SWEEP_ACCOUNTS),
            (
                vec![(SWEEP_ACCOUNTS, "organization,123456789012")],
                SWEEP_ACCOUNTS,
            ),
            // Other accounts are reached only through the role.
            (vec![(SWEEP_ACCOUNTS, "organization")], SWEEP_ACCOUNTS),
            (
                vec![(SWEEP_ACCOUNTS, "123456789012,111122223333")],
                SWEEP_ACCOUNTS,
            ),
        ] {
            let err = read(&vars).unwrap_err();
            assert_eq!(err.variable, variable, "{vars:?}");
            assert!(err.to_string().contains(variable), "{err}");
        }
    }
}
