//! The e-mail body of a notification: the record's finding in plain words for a person (what was
//! found and where, why it matters, what the guard did, what to do, how to exempt the secret).
//! Built from the record alone (which never holds a value), with what it quotes capped.

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
        let secret = record
            .secret_arn
            .as_deref()
            .map_or_else(|| "<ARN>".into(), quote);
        format!(
            "The guard re-encrypted the secret with the designated key. Make sure everything that reads the secret may use that key (kms:Decrypt in the key policy or IAM). The move is not finished yet. {MOVE_NOT_FINISHED} {}",
            rotate(&secret)
        )
    } else {
        to_do(record, &config.key_alias)
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

/// What was found, in words.
fn what(reason: Reason) -> &'static str {
    match reason {
        Reason::AwsManagedKey => {
            "it is encrypted with the AWS managed key, not a customer managed key"
        }
        Reason::KeyDisabled => "its customer managed key is disabled",
        Reason::KeyPendingDeletion => "its customer managed key is scheduled for deletion",
        Reason::KeyNotFound => "its KMS key does not exist",
        Reason::KeyUnusable => "its customer managed key is in a state that cannot be used",
        Reason::KeyNotAllowed => "its customer managed key is not one of the allowed keys",
        Reason::ReplicaAwsManagedKey => "a replica of it is encrypted with the AWS managed key",
        Reason::ReplicaKeyProblem => "a replica of it has a problem with its KMS key",
        Reason::PreviousKeyDecrypts => {
            "it is on a customer managed key, but its current value is still readable through the key it was on before"
        }
        Reason::CustomerManagedKey => "it is on a customer managed key",
        Reason::CrossAccountKey => "it is on a key in another account",
        Reason::ExemptTag => "it carries the exempt tag",
        Reason::SecretNotFound => "the secret no longer exists",
        Reason::FailedCall => "the API call in the event failed",
        Reason::UnsupportedEvent | Reason::UnsupportedEventName => {
            "the event is not one the guard reads"
        }
        Reason::ForeignAccount => "the event is from an account the guard does not watch",
        Reason::MalformedEvent => "the event could not be read",
        Reason::AccessDenied | Reason::KeyAccessDenied => "the guard was denied access",
        Reason::KeyLookupFailed => "the guard could not look up the key",
        Reason::NotFound => "something the guard looked up was not found",
        Reason::TransientFailure => "AWS failed transiently",
        Reason::AwsError => "AWS answered with an error",
    }
}

/// Why it matters. Every reason is named (no wildcard): a new reason does not compile until it
/// has words.
fn why(reason: Reason, deletion_date: Option<String>) -> String {
    match reason {
        Reason::AwsManagedKey => "The AWS managed key has no key policy of its own: any principal that IAM allows to read the secret's value can read it, and access cannot be limited or separated through the key.".into(),
        Reason::KeyDisabled => "KMS refuses to decrypt with a disabled key: nobody can read the secret now, so the applications that use it fail.".into(),
        Reason::KeyPendingDeletion => format!(
            "Nobody can read the secret now, and when the key is deleted{} the secret becomes unreadable for good: nobody, AWS included, can recover it.",
            deletion_date
                .map(|d| format!(" (on {d})"))
                .unwrap_or_default()
        ),
        Reason::KeyNotFound => "Without its key the secret cannot be decrypted: nobody can read it.".into(),
        Reason::KeyUnusable => "KMS may refuse to decrypt with a key in this state (see the details), so the secret may not be readable.".into(),
        Reason::KeyNotAllowed => "The key is customer managed, but not one of the keys the organization allows (CMKGUARD_ALLOWED_KEY_ARNS): a deviation from policy, with the key's own policy deciding who can read the secret.".into(),
        Reason::ReplicaAwsManagedKey => "The replica holds the same value as the secret, and the AWS managed key has no key policy of its own: in the replica's region any principal that IAM allows to read the value can read it.".into(),
        Reason::ReplicaKeyProblem => "The replica holds the same value as the secret; its key has the problem in the details, so the replica may be unreadable or less protected than the secret.".into(),
        Reason::PreviousKeyDecrypts => MOVE_NOT_FINISHED.into(),
        Reason::CustomerManagedKey | Reason::CrossAccountKey => "Nothing is at stake: the secret is on a customer managed key.".into(),
        Reason::ExemptTag => "Nothing: the secret is exempt from the guard.".into(),
        Reason::SecretNotFound => "Nothing: there is no secret left to protect.".into(),
        Reason::FailedCall
        | Reason::UnsupportedEvent
        | Reason::UnsupportedEventName
        | Reason::ForeignAccount
        | Reason::MalformedEvent => "Nothing about the secret was decided from this event.".into(),
        Reason::AccessDenied
        | Reason::KeyAccessDenied
        | Reason::KeyLookupFailed
        | Reason::NotFound
        | Reason::TransientFailure
        | Reason::AwsError => "The guard could not check the secret, so a problem may go unnoticed.".into(),
    }
}

/// Why a move is finished only by a new version (AWS keeps the existing versions under the
/// previous key too).
const MOVE_NOT_FINISHED: &str = "When a secret's key changes, AWS keeps its existing versions encrypted under the previous key as well, so the current value can still be decrypted through that key (for the AWS managed key: by anyone in the account allowed to read secret values) until a new version is current. Only a value written after the move is under the new key alone.";

/// How to give a moved secret its new version.
fn rotate(secret: &str) -> String {
    format!(
        "Give the secret a new version: rotate it (aws secretsmanager rotate-secret --secret-id {secret}), or, without rotation, write a new value (put-secret-value). Writing the same value again makes a new version, but it is the same secret: whoever read it through the previous key still knows it, so change the credential where you can. The guard sees the new version and closes the finding."
    )
}

/// What to do next, when the guard did not re-encrypt the secret.
fn to_do(record: &Record, key_alias: &str) -> String {
    let alias = quote(key_alias);
    let secret = record
        .secret_arn
        .as_deref()
        .map_or_else(|| "<ARN>".into(), quote);
    let key = record
        .key_id
        .as_deref()
        .map_or_else(|| "<key>".into(), quote);
    let re_encrypt = match record.verdict {
        Verdict::Managed => "The secret is managed by another service (see the details) and the guard never re-encrypts it: ask the owning service's administrators to put it on a customer managed key through that service (for Amazon RDS, modify the instance's master user secret key).".to_owned(),
        _ => format!(
            "Re-encrypt the secret with the designated customer managed key, {alias} (aws secretsmanager update-secret --secret-id {secret} --kms-key-id {alias}), and let everything that reads it use that key (kms:Decrypt)."
        ),
    };
    match record.reason {
        Reason::AwsManagedKey => re_encrypt,
        Reason::KeyDisabled => format!("Enable the key again (aws kms enable-key --key-id {key}) if it was disabled by mistake. Re-encryption cannot help until then: Secrets Manager must decrypt with the current key first."),
        Reason::KeyPendingDeletion => format!(
            "Before {}: cancel the deletion, then enable the key (aws kms cancel-key-deletion --key-id {key}, then aws kms enable-key --key-id {key}). Re-encryption cannot help until then: Secrets Manager must decrypt with the current key first.",
            record
                .deletion_date
                .map(crate::text::utc)
                .unwrap_or_else(|| "the deletion date".into())
        ),
        Reason::KeyNotFound => format!("Check the key the secret names. If the key is gone, the value is lost: store a new value on the designated key (update-secret with the new value and --kms-key-id {alias}), and update what uses it."),
        Reason::KeyUnusable => "Bring the key back to Enabled (for example import its key material again, or reconnect its custom key store); then, if it is not the designated key, re-encrypt the secret with that one.".into(),
        Reason::KeyNotAllowed => format!(
            "{re_encrypt} Or, if the key is meant to be allowed, add it to CMKGUARD_ALLOWED_KEY_ARNS."
        ),
        Reason::PreviousKeyDecrypts => rotate(&secret),
        Reason::ReplicaAwsManagedKey | Reason::ReplicaKeyProblem => "Put the replica on a customer managed key of its region (in the Secrets Manager console, edit the replica's encryption key; or remove the replica and replicate it again with a KMS key). The guard never re-encrypts replicas.".into(),
        Reason::CustomerManagedKey
        | Reason::CrossAccountKey
        | Reason::ExemptTag
        | Reason::SecretNotFound
        | Reason::FailedCall
        | Reason::UnsupportedEvent
        | Reason::UnsupportedEventName
        | Reason::ForeignAccount
        | Reason::MalformedEvent => "Nothing.".into(),
        Reason::AccessDenied
        | Reason::KeyAccessDenied
        | Reason::KeyLookupFailed
        | Reason::NotFound
        | Reason::TransientFailure
        | Reason::AwsError => "Check the guard's permissions and logs; the next sweep checks the secret again.".into(),
    }
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
    const FINDINGS: [Reason; 8] = [
        Reason::AwsManagedKey,
        Reason::KeyDisabled,
        Reason::KeyPendingDeletion,
        Reason::KeyNotFound,
        Reason::KeyUnusable,
        Reason::KeyNotAllowed,
        Reason::ReplicaAwsManagedKey,
        Reason::ReplicaKeyProblem,
    ];

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
            for reason in FINDINGS {
                let text = text(&record(verdict, reason, Some("the details")), &config);
                assert_plain_and_complete(&text, "cmkguard:exempt");
                assert!(text.contains(what(reason)), "{reason}: {text}");
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
        assert!(aws.contains("Re-encrypt the secret"), "{aws}");

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
        assert!(pending.contains("(on 2026-12-14T06:12:40Z)"), "{pending}");
        assert!(pending.contains("unreadable for good"), "{pending}");
        assert!(
            pending
                .contains("Before 2026-12-14T06:12:40Z: cancel the deletion, then enable the key"),
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
        assert!(text.contains("Writing the same value again"), "{text}");

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
            assert!(!why(*reason, None).is_empty() && !to_do(&record, "a").is_empty());
        }
    }
}
