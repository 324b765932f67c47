//! Shared AWS configuration and error mapping.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::ProvideCredentials;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::config::Settings;
use crate::ports::RemoteError;

/// Connecting to an AWS endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt of an AWS call (ECR, S3, EventBridge, SQS other than the long poll).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// A whole AWS call, retries included: a hung call ends as a transient error by then.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The timeouts every SDK client gets (SQS widens the attempt for its long poll).
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Loads the AWS configuration chain (environment, profiles, IMDS …) with `[aws]` on top,
/// and [`timeouts`] for every client built from it.
/// `[aws] endpoint_url` (emulators only) applies to every service; the SDK's per-service
/// `AWS_ENDPOINT_URL_<SERVICE>` variables still take precedence for theirs.
pub async fn sdk_config(settings: &Settings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts());
    if !settings.aws.region.is_empty() {
        loader = loader.region(Region::new(settings.aws.region.clone()));
    }
    if !settings.aws.endpoint_url.is_empty() {
        loader = loader.endpoint_url(settings.aws.endpoint_url.clone());
    }
    loader.load().await
}

/// Error codes AWS services use for conditions that pass.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServerException",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMS.ThrottlingException",
];

/// Maps any SDK error to a [`RemoteError`] naming the operation, with a transient flag.
pub fn remote_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> RemoteError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (transient, message) = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown");
            let status = service.raw().status().as_u16();
            let text = service.err().message().unwrap_or("").to_owned();
            (
                status >= 500 || TRANSIENT_CODES.contains(&code),
                format!("{code} (HTTP {status}): {text}"),
            )
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            (true, DisplayErrorContext(&err).to_string())
        }
        _ => (false, DisplayErrorContext(&err).to_string()),
    };
    RemoteError {
        operation,
        message,
        transient,
    }
}

/// At most this many other regions' clients are kept (AWS has fewer regions); past it a
/// client is made for the call and dropped.
const MAX_OTHER_REGIONS: usize = 64;

/// ECR clients by region: the configured region's, and one per other region an image names
/// (a cross-region registry is asked in its own region, SPEC §4). Clients share the SDK
/// config (credentials, timeouts, endpoint) and are cheap to clone.
#[derive(Debug)]
pub struct EcrClients {
    sdk: SdkConfig,
    home: aws_sdk_ecr::Client,
    others: std::sync::Mutex<std::collections::HashMap<String, aws_sdk_ecr::Client>>,
}

impl EcrClients {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            sdk: sdk.clone(),
            home: aws_sdk_ecr::Client::new(sdk),
            others: Default::default(),
        }
    }

    /// The configured region's client.
    pub fn home(&self) -> &aws_sdk_ecr::Client {
        &self.home
    }

    /// The client for `region` (`None` or the configured one: the home client).
    pub fn region(&self, region: Option<&str>) -> aws_sdk_ecr::Client {
        let home_region = self.sdk.region().map(|r| r.as_ref());
        let Some(region) = region.filter(|r| Some(*r) != home_region) else {
            return self.home.clone();
        };
        let mut others = self.others.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = others.get(region) {
            return client.clone();
        }
        let conf = aws_sdk_ecr::config::Builder::from(&self.sdk)
            .region(Region::new(region.to_owned()))
            .build();
        let client = aws_sdk_ecr::Client::from_conf(conf);
        // Events name the region: a queue carrying made-up ones must not grow the map.
        if others.len() < MAX_OTHER_REGIONS {
            others.insert(region.to_owned(), client.clone());
        }
        client
    }

    /// How many other regions' clients are kept.
    pub fn other_regions(&self) -> usize {
        self.others.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Clone for EcrClients {
    fn clone(&self) -> Self {
        let others = self
            .others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Self {
            sdk: self.sdk.clone(),
            home: self.home.clone(),
            others: std::sync::Mutex::new(others),
        }
    }
}

/// Whether the AWS configuration chain yields credentials; the error says why not.
pub async fn credentials_found(sdk: &SdkConfig) -> Result<(), String> {
    match sdk.credentials_provider() {
        None => Err("none found".into()),
        Some(p) => p
            .provide_credentials()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_named_by_events_keep_at_most_a_bounded_number_of_clients() {
        let sdk = SdkConfig::builder()
            .region(Region::new("eu-west-2"))
            .behavior_version(BehaviorVersion::latest())
            .build();
        let clients = EcrClients::new(&sdk);
        clients.region(Some("eu-west-2"));
        clients.region(None);
        assert_eq!(clients.other_regions(), 0, "the home region is not another");
        for i in 0..1000 {
            clients.region(Some(&format!("xx-made-up-{i}")));
        }
        assert_eq!(clients.other_regions(), MAX_OTHER_REGIONS);
        clients.region(Some("xx-made-up-0"));
        assert_eq!(clients.other_regions(), MAX_OTHER_REGIONS);
    }
}
