//! ARN parsing, just as far as the guard needs it.

/// The parts of an ARN the guard reads: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

const PARTITIONS: [&str; 5] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];

impl<'a> Arn<'a> {
    /// Parses an ARN of a known partition; `None` for anything else.
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let arn = Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        if !PARTITIONS.contains(&arn.partition) || arn.service.is_empty() || arn.resource.is_empty()
        {
            return None;
        }
        Some(arn)
    }

    /// A Secrets Manager secret ARN (full or partial): `...:secretsmanager:R:A:secret:NAME`.
    pub fn secret(s: &'a str) -> Option<Self> {
        Self::parse(s).filter(|a| {
            a.service == "secretsmanager"
                && is_region(a.region)
                && is_account_id(a.account)
                && a.resource
                    .strip_prefix("secret:")
                    .is_some_and(|n| !n.is_empty())
        })
    }

    /// A KMS key ARN: `...:kms:R:A:key/ID`.
    pub fn kms_key(s: &'a str) -> Option<Self> {
        Self::parse(s).filter(|a| {
            a.service == "kms"
                && is_region(a.region)
                && is_account_id(a.account)
                && a.resource
                    .strip_prefix("key/")
                    .is_some_and(|id| !id.is_empty())
        })
    }

    /// A KMS alias ARN: `...:kms:R:A:alias/NAME`.
    pub fn kms_alias(s: &'a str) -> Option<Self> {
        Self::parse(s).filter(|a| a.service == "kms" && a.resource.starts_with("alias/"))
    }
}

/// The partition of a region (`aws-cn`, `aws-us-gov`, else `aws`).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ARN of key `key_id` (a bare key id) in `account` and `region`, in the region's partition:
/// the one place a key ARN is built.
pub fn kms_key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!(
        "arn:{}:kms:{region}:{account}:key/{key_id}",
        partition_of(region)
    )
}

/// Whether `id` (a key as `KmsKeyIds` or a secret names it: key id, key ARN or alias) is the
/// key a secret names `secret_key` and `DescribeKey` resolved to `key_arn`: the one place keys
/// are compared (`DefaultEncryptionKey` and other names match neither).
pub fn same_key(id: &str, secret_key: Option<&str>, key_arn: Option<&str>) -> bool {
    Some(id) == secret_key
        || key_arn.is_some_and(|arn| {
            id == arn
                || Arn::kms_key(arn).is_some_and(|a| a.resource.strip_prefix("key/") == Some(id))
        })
}

/// Twelve ASCII digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A plausible region name such as `us-east-1` or `us-gov-west-1`.
pub fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes().last().is_some_and(|b| b.is_ascii_digit())
}

/// A secret's name from its ARN (a deleted secret's, say): the resource without the 6 random
/// characters a full ARN ends in.
pub fn secret_name(secret_arn: &str) -> String {
    let name = secret_arn.rsplit(":secret:").next().unwrap_or(secret_arn);
    match name.rsplit_once('-') {
        Some((base, suffix))
            if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            base.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// True when a key id names an AWS managed key by alias (`alias/aws/...`, as a name or an ARN).
pub fn is_aws_managed_alias(key_id: &str) -> bool {
    key_id.starts_with("alias/aws/")
        || Arn::kms_alias(key_id).is_some_and(|a| a.resource.starts_with("alias/aws/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_secret_arns_of_every_partition() {
        for p in ["aws", "aws-cn", "aws-us-gov"] {
            let s = format!("arn:{p}:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf");
            let arn = Arn::secret(&s).unwrap();
            assert_eq!(arn.partition, p);
            assert_eq!(arn.account, "123456789012");
            assert_eq!(arn.resource, "secret:app/db-AbCdEf");
        }
    }

    #[test]
    fn rejects_other_services_partitions_and_garbage() {
        for s in [
            "arn:aws:s3:::bucket",
            "arn:aws:secretsmanager:us-east-1:123456789012:rotation:x",
            "arn:azure:secretsmanager:us-east-1:123456789012:secret:x",
            "arn:aws:secretsmanager:us-east-1:12345:secret:x",
            "arn:aws:secretsmanager:US-EAST-1:123456789012:secret:x",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
            "not an arn",
            "",
        ] {
            assert!(Arn::secret(s).is_none(), "{s}");
        }
    }

    #[test]
    fn the_name_of_a_secret_comes_from_its_arn() {
        assert_eq!(
            secret_name("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"),
            "app/db"
        );
        assert_eq!(
            secret_name("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db"),
            "app/db"
        );
        assert_eq!(secret_name("arn:aws:x:secret:plain"), "plain");
    }

    #[test]
    fn knows_key_and_alias_arns() {
        assert!(Arn::kms_key("arn:aws:kms:us-east-1:123456789012:key/1234").is_some());
        assert!(Arn::kms_key("arn:aws:kms:us-east-1:123456789012:alias/x").is_none());
        assert!(is_aws_managed_alias("alias/aws/secretsmanager"));
        assert!(is_aws_managed_alias(
            "arn:aws:kms:us-east-1:123456789012:alias/aws/secretsmanager"
        ));
        assert!(!is_aws_managed_alias("alias/cmkguard/secrets"));
        assert!(!is_aws_managed_alias("alias/awsome"));
    }
}
