//! The e-mail body of a notification: the record's finding in plain words for a person (what was
//! found and where, why it matters, what the guard did, what to do, how to exempt the secret).
//! Built from the record alone (which never holds a value), with what it quotes capped.

use crate::advice;
use crate::arn::secret_name;
use crate::config::{Action, Config};
use crate::reason::Reason;
use crate::record::{ActionRecord, Outcome, Record, Verdict};
use crate::text::shorten;

/// The plain-text e-mail for `record`; `config` names the exempt tag and the designated key.
pub fn text(record: &Record, config: &Config) -> String {
    let arn = record.secret_arn.as_deref().map(quote);
    let name = arn.as_deref().map_or_else(|| "?".to_owned(), secret_name);
    let account = record.account.as_deref().map_or_else(|| "?".into(), quote);
    let region = record.region.as_deref().map_or_else(|| "?".into(), quote);
    let key = record.key_id.as_deref().map_or_else(
        || format!("the AWS managed key ({})", crate::tags::DEFAULT_KEY),
        quote,
    );
    let detail = record.detail.as_deref().map(quote);
    let remediated = record
        .actions
        .iter()
        .any(|a| a.action == Action::Remediate && a.outcome == Outcome::Done);

    let mut out = format!(
        "cmkguard found {} secret {name}: {}.\n\n",
        verdict_words(record.verdict),
        what(record.reason),
    );
    out.push_str(&format!("Secret:  {name}\n"));
    out.push_str(&format!("ARN:     {}\n", arn.as_deref().unwrap_or("?")));
    out.push_str(&format!("Account: {account}\n"));
    out.push_str(&format!("Region:  {region}\n"));
    out.push_str(&format!("Key:     {key}\n"));
    if let Some(event) = &record.event_name {
        out.push_str(&format!("Event:   {}\n", quote(event)));
    }
    if let Some(detail) = &detail {
        out.push_str(&format!("Details: {detail}\n"));
    }

    out.push_str(&format!(
        "\nWhy it matters: {}\n",
        why(record.reason, record.deletion_date.map(crate::text::utc))
    ));

    out.push_str("\nWhat the guard did:");
    out.push_str(&done(record));

    let next = if remediated {
        // What is left of the move is the next finding's: say it now, once.
        let left = Reason::PreviousKeyDecrypts;
        format!(
            "The guard re-encrypted the secret with the designated key. Make sure everything that reads the secret may use that key (kms:Decrypt in the key policy or IAM). The move is not finished yet. {} {}",
            plain(advice::of(left).why),
            to_do(record, left, &config.key_alias)
        )
    } else {
        to_do(record, record.reason, &config.key_alias)
    };
    out.push_str(&format!("\nWhat to do: {next}\n"));

    out.push_str(&format!(
        "\nIf the secret must stay as it is, exempt it: tag it {} = true, and the guard leaves it alone.\n",
        quote(&config.exempt_tag)
    ));
    out
}

fn verdict_words(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::NonCompliant => "a non-compliant",
        Verdict::Managed => "a non-compliant managed",
        Verdict::Compliant => "a compliant",
        Verdict::Exempt => "an exempt",
        Verdict::NotFound => "no",
        Verdict::Ignored => "nothing to check in the event about",
        Verdict::Error => "an error deciding about",
    }
}

/// What was found, in words (the reason's row of [`crate::advice`]).
fn what(reason: Reason) -> String {
    plain(advice::of(reason).what)
}

/// A row's text for a person reading plain text: the code marks (backticks) taken out.
fn plain(text: &str) -> String {
    text.replace('`', "")
}

/// Why it matters: the reason's row, and the deletion date when a key is going away.
fn why(reason: Reason, deletion_date: Option<String>) -> String {
    let why = plain(advice::of(reason).why);
    match deletion_date {
        Some(date) if reason == Reason::KeyPendingDeletion => {
            format!("{why} The key is deleted on {date}.")
        }
        _ => why.to_owned(),
    }
}

/// What to do about `reason`: its row, then the command that does it for this secret. A managed
/// secret's key is changed through its owning service.
fn to_do(record: &Record, reason: Reason, key_alias: &str) -> String {
    if record.verdict == Verdict::Managed {
        return "The secret is managed by another service (see the details) and the guard never re-encrypts it: ask the owning service's administrators to put it on a customer managed key through that service (for Amazon RDS, modify the instance's master user secret key).".into();
    }
    let to_do = plain(advice::of(reason).to_do);
    match command(record, reason, key_alias) {
        Some(command) => format!("{to_do} {command}"),
        None => to_do.to_owned(),
    }
}

/// The AWS CLI command that does what `reason`'s row says, for this secret and key.
fn command(record: &Record, reason: Reason, key_alias: &str) -> Option<String> {
    let secret = record
        .secret_arn
        .as_deref()
        .map_or_else(|| "<ARN>".into(), quote);
    let key = record
        .key_id
        .as_deref()
        .map_or_else(|| "<key>".into(), quote);
    let alias = quote(key_alias);
    Some(match reason {
        Reason::AwsManagedKey | Reason::KeyNotAllowed => format!(
            "To move it to the designated key, {alias}: aws secretsmanager update-secret --secret-id {secret} --kms-key-id {alias}; and let everything that reads it use that key (kms:Decrypt)."
        ),
        Reason::KeyDisabled => format!("Command: aws kms enable-key --key-id {key}"),
        Reason::KeyPendingDeletion => format!(
            "Before {}: aws kms cancel-key-deletion --key-id {key}, then aws kms enable-key --key-id {key}",
            record
                .deletion_date
                .map(crate::text::utc)
                .unwrap_or_else(|| "the deletion date".into())
        ),
        Reason::PreviousKeyDecrypts => {
            format!("Command: aws secretsmanager rotate-secret --secret-id {secret}")
        }
        _ => return None,
    })
}

/// What the guard did: one line per action, or why nothing.
fn done(record: &Record) -> String {
    let mut out = String::new();
    if record.dry_run {
        out.push_str(" this was a dry run; nothing was changed.");
    }
    if record.actions.is_empty() && !record.dry_run {
        out.push_str(" nothing beyond this message.");
    }
    out.push('\n');
    for action in &record.actions {
        out.push_str(&format!("- {}\n", action_words(action)));
    }
    out
}

fn action_words(action: &ActionRecord) -> String {
    let what = match action.action {
        Action::Remediate => "Re-encryption",
        Action::Rotate => "Rotation",
        Action::Tag => "Status tag",
        Action::Notify => "Notification",
        Action::SecurityHub => "Security Hub finding",
    };
    let outcome = match action.outcome {
        Outcome::Done => "done",
        Outcome::DryRun => "dry run, not done",
        Outcome::Skipped => "skipped",
        Outcome::Failed => "failed",
    };
    format!("{what}: {outcome}: {}", quote(&action.detail))
}

/// Text from the record as the e-mail quotes it: capped, on one line, without the record's
/// backticks.
fn quote(s: &str) -> String {
    let plain: String = s
        .chars()
        .filter(|c| *c != '`')
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    shorten(&plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventMeta;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app/db-AbCdEf";
    const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd";

    /// The reasons a notified record (non-compliant or managed) can have.
    /// Every reason a `FAILED` finding can have: derived from the reasons and their severity,
    /// so a new finding reason is checked here without being listed.
    fn findings() -> impl Iterator<Item = Reason> {
        Reason::ALL.iter().copied().filter(|r| {
            crate::finding::Severity::of_reason(*r) != crate::finding::Severity::Informational
        })
    }

    fn record(verdict: Verdict, reason: Reason, detail: Option<&str>) -> Record {
        let meta = EventMeta {
            event_id: Some("e1".into()),
            event_name: Some("PutSecretValue".into()),
            account: Some("111122223333".into()),
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        let mut record = Record::new(
            &meta,
            Some(ARN.into()),
            verdict,
            reason,
            detail.map(Into::into),
            false,
        );
        record.key_id = (reason != Reason::AwsManagedKey).then(|| KEY.into());
        record.actions.push(ActionRecord::new(
            Action::Tag,
            Outcome::Done,
            "tagged `cmkguard:status=non-compliant`",
        ));
        record
    }

    fn assert_plain_and_complete(text: &str, exempt_tag: &str) {
        for needle in [
            "app/db",
            ARN,
            "111122223333",
            "eu-west-1",
            "Why it matters: ",
            "What the guard did:",
            "What to do: ",
            &format!("tag it {exempt_tag} = true"),
        ] {
            assert!(text.contains(needle), "no {needle:?} in:\n{text}");
        }
        assert!(
            !text.contains('{') && !text.contains("\"verdict\""),
            "{text}"
        );
        assert!(!text.contains('`'), "{text}");
    }

    #[test]
    fn every_finding_names_the_secret_why_and_what_to_do() {
        let config = Config::default();
        for verdict in [Verdict::NonCompliant, Verdict::Managed] {
            for reason in findings() {
                let text = text(&record(verdict, reason, Some("the details")), &config);
                assert_plain_and_complete(&text, "cmkguard:exempt");
                assert!(text.contains(&what(reason)), "{reason}: {text}");
                assert!(text.contains("Details: the details"), "{text}");
            }
        }
    }

    #[test]
    fn the_exempt_tag_is_the_configured_one() {
        let config = Config {
            exempt_tag: "security:skip".into(),
            ..Config::default()
        };
        let text = text(
            &record(Verdict::NonCompliant, Reason::AwsManagedKey, None),
            &config,
        );
        assert_plain_and_complete(&text, "security:skip");
        assert!(text.contains("aws/secretsmanager"), "{text}");
        assert!(text.contains("alias/cmkguard/secrets"), "{text}");
    }

    #[test]
    fn why_and_what_to_do_follow_the_reason() {
        let config = Config::default();
        let words = |verdict, reason, detail| text(&record(verdict, reason, detail), &config);

        let aws = words(Verdict::NonCompliant, Reason::AwsManagedKey, None);
        assert!(aws.contains("no key policy of its own"), "{aws}");
        assert!(
            aws.contains("Move the secret to the designated key"),
            "{aws}"
        );
        assert!(aws.contains("aws secretsmanager update-secret"), "{aws}");

        let disabled = words(Verdict::NonCompliant, Reason::KeyDisabled, None);
        assert!(
            disabled.contains("nobody can read the secret now"),
            "{disabled}"
        );
        assert!(disabled.contains("enable-key"), "{disabled}");

        // The date travels as a field (`Record::deletion_date`), not read back from the detail.
        let detail = "key `k` is pending deletion: the secret becomes unreadable for good";
        let mut pending = record(
            Verdict::NonCompliant,
            Reason::KeyPendingDeletion,
            Some(detail),
        );
        pending.deletion_date =
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_797_228_760));
        let pending = text(&pending, &config);
        assert!(
            pending.contains("The key is deleted on 2026-12-14T06:12:40Z."),
            "{pending}"
        );
        assert!(pending.contains("unreadable for good"), "{pending}");
        assert!(
            pending.contains("Before 2026-12-14T06:12:40Z: aws kms cancel-key-deletion --key-id"),
            "{pending}"
        );

        let not_allowed = words(Verdict::NonCompliant, Reason::KeyNotAllowed, None);
        assert!(
            not_allowed.contains("deviation from policy"),
            "{not_allowed}"
        );

        let replica = words(Verdict::NonCompliant, Reason::ReplicaAwsManagedKey, None);
        assert!(replica.contains("never re-encrypts replicas"), "{replica}");

        let managed = words(Verdict::Managed, Reason::AwsManagedKey, None);
        assert!(managed.contains("ask the owning service"), "{managed}");
        assert!(!managed.contains("update-secret"), "{managed}");
    }

    #[test]
    fn says_what_the_guard_did() {
        let config = Config::default();
        let mut done = record(Verdict::NonCompliant, Reason::AwsManagedKey, None);
        done.actions.insert(
            0,
            ActionRecord::new(
                Action::Remediate,
                Outcome::Done,
                format!("re-encrypted with `{KEY}`"),
            ),
        );
        let text = text(&done, &config);
        assert!(
            text.contains(&format!("- Re-encryption: done: re-encrypted with {KEY}")),
            "{text}"
        );
        assert!(
            text.contains("- Status tag: done: tagged cmkguard:status=non-compliant"),
            "{text}"
        );
        // The move is said to be unfinished, with how to finish it.
        assert!(
            text.contains("What to do: The guard re-encrypted the secret"),
            "{text}"
        );
        assert!(text.contains("The move is not finished yet."), "{text}");
        assert!(text.contains("aws secretsmanager rotate-secret"), "{text}");
        assert!(text.contains("The same value written again"), "{text}");

        let mut dry = record(Verdict::NonCompliant, Reason::AwsManagedKey, None);
        dry.dry_run = true;
        dry.actions = vec![ActionRecord::new(
            Action::Tag,
            Outcome::DryRun,
            "would have tagged",
        )];
        let text = super::text(&dry, &config);
        assert!(
            text.contains("this was a dry run; nothing was changed"),
            "{text}"
        );
        assert!(
            text.contains("- Status tag: dry run, not done: would have tagged"),
            "{text}"
        );

        let mut nothing = record(Verdict::NonCompliant, Reason::AwsManagedKey, None);
        nothing.actions.clear();
        let text = super::text(&nothing, &config);
        assert!(
            text.contains("What the guard did: nothing beyond this message."),
            "{text}"
        );
    }

    #[test]
    fn every_reason_has_words_and_stays_small() {
        let config = Config::default();
        let long = "x".repeat(100_000);
        for reason in Reason::ALL {
            let mut record = record(Verdict::NonCompliant, *reason, Some(&long));
            record.actions.push(ActionRecord::new(
                Action::Notify,
                Outcome::Failed,
                long.clone(),
            ));
            record.event_name = Some(format!("{long}\n{{\"verdict\":1}}"));
            let text = text(&record, &config);
            assert!(text.len() < 4_096, "{reason}: {} bytes", text.len());
            assert!(!why(*reason, None).is_empty() && !to_do(&record, *reason, "a").is_empty());
        }
    }
}
