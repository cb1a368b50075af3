//! How each ECR call is made (timeouts, retries, what is never retried) and
//! what its failure means once the SDK's retries are spent.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::config::interceptors::InterceptorContext;
use aws_sdk_ecr::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::operation::put_image::PutImageError;

use crate::fault::{Fault, FaultKind};
use crate::registry::{ONE_ATTEMPT_TIMEOUT, OPERATION_TIMEOUT};

/// Timeouts sized so that a read, the writes and a re-read of conflicting tags
/// all fit in the function's 30-second timeout even when ECR hangs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_ATTEMPTS: u32 = 3;

/// Connect, per-attempt and per-operation limits for every ECR call.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Standard mode: exponential backoff with jitter on throttling, 5xx and
/// transport errors. Not adaptive mode: it made 30 times fewer throttled calls
/// under sustained load (`tests/quota.rs`), but a client throttled before it
/// has measured its own rate drops to 0.5 requests per second with retries
/// costing 5 tokens, so a cold instance's throttled read waited past the 8 s
/// operation timeout.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// PutImage's LimitExceededException is final: the SDK classifies the code as
/// throttling and would retry it with backoff, but an image with 1,000 tags
/// still has 1,000 tags a second later, and each retry spends PutImage quota.
#[derive(Debug)]
pub(super) struct TagLimitIsFinal;

impl ClassifyRetry for TagLimitIsFinal {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let limit = matches!(
            ctx.output_or_error(),
            Some(Err(e)) if e.as_operation_error().and_then(|e| e.downcast_ref::<PutImageError>())
                .is_some_and(PutImageError::is_limit_exceeded_exception)
        );
        if limit {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "TagLimitIsFinal"
    }
}

/// The same call as a single attempt: no retries, given up after [`ONE_ATTEMPT_TIMEOUT`].
pub(super) fn single_attempt(config: aws_sdk_ecr::config::Builder) -> aws_sdk_ecr::config::Builder {
    config.retry_config(RetryConfig::disabled()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(ONE_ATTEMPT_TIMEOUT))
            .operation_attempt_timeout(ONE_ATTEMPT_TIMEOUT)
            .operation_timeout(ONE_ATTEMPT_TIMEOUT)
            .build(),
    )
}

/// Classifies what is left of a call after the SDK's own retries.
/// What a call that found no credentials says.
const NO_CREDENTIALS: &str = "no AWS credentials found: they come from the environment (AWS_ACCESS_KEY_ID and \
AWS_SECRET_ACCESS_KEY), a profile (--profile or AWS_PROFILE, SSO included in builds with the sso feature), web identity or \
a container or instance role; AWS_ENDPOINT_URL points at a local emulator instead of AWS";

/// Whether the call failed because no credentials could be loaded: a `CredentialsError` in its
/// source chain (the SDK wraps it in the dispatch failure).
fn credentials_missing(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

pub(crate) fn fault<E>(error: &SdkError<E, HttpResponse>) -> Fault
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // Transport failures are described by their whole source chain, kept short.
    let mut message = DisplayErrorContext(error).to_string();
    if let Some((cut, _)) = message.char_indices().nth(300) {
        message.truncate(cut);
        message.push('…');
    }
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            // An answer without ECR's JSON error (a load balancer's HTML 503, say) still has its status.
            let code = service.err().code().map_or_else(|| format!("HTTP {status}"), str::to_owned);
            let message = service.err().message().map_or_else(|| format!("an answer with status {status} and no ECR error"), str::to_owned);
            let kind = if status == 429 || matches!(code.as_str(), "ThrottlingException" | "Throttling" | "TooManyRequestsException") {
                FaultKind::Throttled
            } else if status >= 500 || code == "ServerException" {
                FaultKind::Server
            } else {
                FaultKind::Permanent
            };
            Fault::new(kind, code, message)
        }
        SdkError::TimeoutError(_) => Fault::new(FaultKind::Timeout, "Timeout", message),
        // No credentials: one line that says where they come from, not the provider chain's story.
        SdkError::DispatchFailure(_) if credentials_missing(error) => Fault::new(FaultKind::Transport, "NoCredentials", NO_CREDENTIALS),
        SdkError::DispatchFailure(_) => Fault::new(FaultKind::Transport, "DispatchFailure", message),
        SdkError::ResponseError(_) => Fault::new(FaultKind::Transport, "ResponseError", message),
        SdkError::ConstructionFailure(_) => Fault::new(FaultKind::Permanent, "ConstructionFailure", message),
        _ => Fault::new(FaultKind::Transport, "Unknown", message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_sdk_ecr::operation::batch_get_image::BatchGetImageError;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    #[test]
    fn a_call_without_credentials_says_where_they_come_from_in_one_line() {
        let missing = ConnectorError::other(Box::new(CredentialsError::not_loaded("no providers in chain provided credentials")), None);
        let f = fault(&SdkError::<BatchGetImageError, HttpResponse>::dispatch_failure(missing));
        assert_eq!((f.code.as_str(), f.kind), ("NoCredentials", FaultKind::Transport));
        assert!(f.message.contains("--profile") && f.message.contains("AWS_ENDPOINT_URL") && !f.message.contains('\n'), "{f}");
        let refused = ConnectorError::io(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        let f = fault(&SdkError::<BatchGetImageError, HttpResponse>::dispatch_failure(refused));
        assert_eq!(f.code, "DispatchFailure", "a network failure stays one");
    }
}
