//! The `ImportFindings` port: a [`Finding`] as an ASFF `AwsSecurityFinding`, imported with
//! `BatchImportFindings` in the finding's own account and region (the default product ARN takes
//! findings only from the account they are about).

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_securityhub::types::{
    AwsKmsKeyDetails, AwsSecretsManagerSecretDetails, AwsSecurityFinding, Compliance,
    ComplianceStatus, FindingProviderFields, FindingProviderSeverity, Partition, Recommendation,
    RecordState, Remediation, Resource, ResourceDetails, Severity, SeverityLabel,
};
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use cmkguard_core::finding::{
    self, FINDING_TYPE, Finding, GENERATOR_ID, PROVIDER_NAME, PROVIDER_VERSION, RefusedFinding,
    Subject,
};
use cmkguard_core::ports::{AwsResult, ImportFindings};
use cmkguard_core::{AwsError, Scope};

use crate::errors::classify;
use crate::ports::AwsPorts;

fn timestamp(at: SystemTime) -> String {
    DateTime::from(at)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn label(severity: finding::Severity) -> SeverityLabel {
    SeverityLabel::from(severity.as_str())
}

/// A secret as a finding's resource; in a key's finding, the secret's name is not known (only
/// its ARN), so the details give only its key.
fn secret_resource(f: &Finding, arn: &str, name: Option<&str>, key: Option<&str>) -> Resource {
    let secret = AwsSecretsManagerSecretDetails::builder()
        .set_name(name.map(str::to_owned))
        .set_kms_key_id(key.map(str::to_owned));
    Resource::builder()
        .r#type("AwsSecretsManagerSecret")
        .id(arn)
        .partition(Partition::from(f.partition.as_str()))
        .region(arn.split(':').nth(3).unwrap_or(&f.region))
        .details(
            ResourceDetails::builder()
                .aws_secrets_manager_secret(secret.build())
                .build(),
        )
        .build()
}

/// The ASFF form of `f`, updated at `now`.
pub fn asff(f: &Finding, now: SystemTime) -> AwsSecurityFinding {
    let resources = match &f.subject {
        Subject::Secret {
            arn,
            name,
            kms_key_id,
        } => vec![secret_resource(f, arn, Some(name), kms_key_id.as_deref())],
        // The key first, then the secrets that depend on it.
        Subject::Key { arn, secrets, .. } => {
            let key = Resource::builder()
                .r#type("AwsKmsKey")
                .id(arn)
                .partition(Partition::from(f.partition.as_str()))
                .region(&f.region)
                .details(
                    ResourceDetails::builder()
                        .aws_kms_key(AwsKmsKeyDetails::builder().key_manager("CUSTOMER").build())
                        .build(),
                )
                .build();
            let secrets = secrets
                .iter()
                .map(|secret| secret_resource(f, secret, None, Some(arn)));
            std::iter::once(key).chain(secrets).collect()
        }
    };
    let product_fields = HashMap::from([
        ("ProviderName".to_owned(), PROVIDER_NAME.to_owned()),
        ("ProviderVersion".to_owned(), PROVIDER_VERSION.to_owned()),
        ("cmkguard/verdict".to_owned(), f.verdict.as_str().to_owned()),
        ("cmkguard/reason".to_owned(), f.reason.to_string()),
    ]);
    let created = timestamp(f.created_at.unwrap_or(now));
    AwsSecurityFinding::builder()
        .schema_version("2018-10-08")
        .id(&f.id)
        .product_arn(f.product_arn())
        .product_name(PROVIDER_NAME)
        .company_name(PROVIDER_NAME)
        .region(&f.region)
        .generator_id(GENERATOR_ID)
        .aws_account_id(&f.account)
        .types(FINDING_TYPE)
        .created_at(&created)
        .first_observed_at(&created)
        .updated_at(timestamp(now))
        .severity(
            Severity::builder()
                .label(label(f.severity))
                .original(f.severity.as_str())
                .build(),
        )
        .finding_provider_fields(
            FindingProviderFields::builder()
                .severity(
                    FindingProviderSeverity::builder()
                        .label(label(f.severity))
                        .original(f.severity.as_str())
                        .build(),
                )
                .types(FINDING_TYPE)
                .build(),
        )
        .title(&f.title)
        .description(&f.description)
        .remediation(
            Remediation::builder()
                .recommendation(Recommendation::builder().text(&f.recommendation).build())
                .build(),
        )
        .set_product_fields(Some(product_fields))
        .set_resources(Some(resources))
        .compliance(
            Compliance::builder()
                .status(ComplianceStatus::from(f.compliance.as_str()))
                .build(),
        )
        .record_state(RecordState::from(f.record_state.as_str()))
        .build()
}

/// One try of the `ImportFindings` port (see [`crate::retry`]).
impl AwsPorts {
    async fn import_findings_once(
        &self,
        scope: &Scope,
        findings: &[Finding],
    ) -> AwsResult<Vec<RefusedFinding>> {
        let clients = self.clients(scope).await?;
        let now = SystemTime::now();
        let out = clients
            .securityhub()
            .batch_import_findings()
            .set_findings(Some(findings.iter().map(|f| asff(f, now)).collect()))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .failed_findings()
            .iter()
            .map(|e| RefusedFinding {
                id: e.id().unwrap_or_default().to_owned(),
                code: e.error_code().unwrap_or("Unknown").to_owned(),
                message: e.error_message().unwrap_or_default().to_owned(),
            })
            .collect())
    }
}

impl ImportFindings for AwsPorts {
    async fn import_findings(
        &self,
        scope: &Scope,
        findings: &[Finding],
    ) -> AwsResult<Vec<RefusedFinding>> {
        if findings.is_empty() {
            return Ok(Vec::new());
        }
        if findings.len() > cmkguard_core::act::IMPORT_BATCH {
            return Err(AwsError::Other(format!(
                "{} findings in one `BatchImportFindings` (at most {})",
                findings.len(),
                cmkguard_core::act::IMPORT_BATCH
            )));
        }
        self.retry()
            .run(|| self.import_findings_once(scope, findings))
            .await
    }
}
