//! SDK errors, sorted into what the engine needs to know: not found, access denied, transient
//! (retry the event) or anything else (a permanent failure, recorded as a verdict).

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use cmkguard_core::AwsError;

const NOT_FOUND: [&str; 3] = ["ResourceNotFoundException", "NotFoundException", "NotFound"];
const ACCESS_DENIED: [&str; 4] = [
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "KMSInvalidStateException-AccessDenied",
];
const THROTTLING: [&str; 9] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "KMSInternalException",
];
const SERVER: [&str; 4] = [
    "InternalServiceError",
    "InternalFailure",
    "ServiceUnavailable",
    "InternalError",
];

/// Classifies any SDK error (every service's error type goes through here).
pub fn classify<E, R>(err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let text = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            AwsError::Transient(text)
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().unwrap_or_default();
            let status = service.raw().status();
            let text = if message.is_empty() {
                code.to_owned()
            } else {
                format!("{code}: {message}")
            };
            if NOT_FOUND.contains(&code) {
                AwsError::NotFound(text)
            } else if ACCESS_DENIED.contains(&code) || status == 403 && !THROTTLING.contains(&code)
            {
                AwsError::AccessDenied(text)
            } else if THROTTLING.contains(&code)
                || SERVER.contains(&code)
                || status >= 500
                || status == 429
            {
                AwsError::Transient(text)
            } else {
                AwsError::Other(text)
            }
        }
        _ => AwsError::Other(text),
    }
}

/// The HTTP status of a raw response, whatever the response type.
pub trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}
