//! [`Registry`] on the Amazon ECR API: what each tag points to now.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::ImageIdentifier;
use base64::Engine as _;
use futures::StreamExt;
use tracing::{debug, warn};

use super::aws::{EcrClients, remote_error};
use super::registry::Sites;
use crate::event::{Digest, ImageRef, Repository};
use crate::image::{Desired, index_entries};
use crate::ports::{Credentials, PullAuth, Registry, RemoteError, Resolution};

/// BatchGetImage takes at most 100 image ids, all of one repository.
const IDS_PER_CALL: usize = 100;
/// ECR calls in flight at once during one resolve.
const CONCURRENT_CALLS: usize = 8;
/// Manifest types we accept, so that image indexes and OCI images resolve too.
const MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// An ECR call that has not answered by then ends as a transient error, whatever the SDK's
/// own timeouts (a backstop above [`super::aws::OPERATION_TIMEOUT`]): a hung BatchGetImage
/// must not keep its tag in flight, nor a hung GetAuthorizationToken every pull.
pub const CALL_BOUND: Duration = Duration::from_secs(65);

/// `call` bounded by `bound`; past it, a transient error naming `operation`.
async fn bounded<T>(
    operation: &'static str,
    bound: Duration,
    call: impl Future<Output = Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
        Err(RemoteError {
            operation,
            message: format!("no answer within {}s", bound.as_secs_f32()),
            transient: true,
        })
    })
}

/// ECR through the AWS SDK. Counts its API calls (benchmarks, tests).
#[derive(Clone, Debug)]
pub struct EcrRegistry {
    clients: EcrClients,
    calls: Arc<AtomicU64>,
    bound: Duration,
}

impl EcrRegistry {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            clients: EcrClients::new(sdk),
            calls: Arc::default(),
            bound: CALL_BOUND,
        }
    }

    /// With another bound on each call than [`CALL_BOUND`] (tests).
    pub fn with_bound(mut self, bound: Duration) -> Self {
        self.bound = bound;
        self
    }

    /// The configured region's client.
    pub fn client(&self) -> &Client {
        self.clients.home()
    }

    /// ECR API calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// One BatchGetImage call for ≤100 tags of one repository, in its registry's region.
    async fn batch(
        &self,
        (registry, region): (Option<&str>, Option<&str>),
        repository: &Repository,
        images: &[&ImageRef],
    ) -> Vec<(ImageRef, Resolution)> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let ids = images
            .iter()
            .map(|i| ImageIdentifier::builder().image_tag(i.tag.as_str()).build())
            .collect();
        let mut call = self
            .clients
            .region(region)
            .batch_get_image()
            .repository_name(repository.as_str())
            .set_image_ids(Some(ids))
            .set_accepted_media_types(Some(MEDIA_TYPES.iter().map(|s| s.to_string()).collect()));
        if let Some(r) = registry {
            call = call.registry_id(r);
        }
        let send = async { Ok(call.send().await) };
        let out = match bounded("ecr:BatchGetImage", self.bound, send).await {
            Err(hung) => {
                return images
                    .iter()
                    .map(|i| ((*i).clone(), Err(hung.clone())))
                    .collect();
            }
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                let not_found = e
                    .as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception());
                if not_found {
                    warn!(
                        repository = repository.as_str(),
                        "repository not found in ECR"
                    );
                    return images.iter().map(|i| ((*i).clone(), Ok(None))).collect();
                }
                let err = remote_error("ecr:BatchGetImage", e);
                return images
                    .iter()
                    .map(|i| ((*i).clone(), Err(err.clone())))
                    .collect();
            }
        };
        let mut found: HashMap<&str, Resolution> = HashMap::new();
        for image in out.images() {
            let Some(id) = image.image_id() else { continue };
            let (Some(tag), Some(digest)) = (id.image_tag(), id.image_digest()) else {
                continue;
            };
            let resolution = desired(
                digest,
                image.image_manifest_media_type(),
                image.image_manifest().unwrap_or_default(),
            )
            .map(Some)
            .map_err(|reason| RemoteError {
                operation: "ecr:BatchGetImage",
                message: format!("{}:{tag}: {reason}", repository.as_str()),
                transient: false,
            });
            found.insert(tag, resolution);
        }
        for failure in out.failures() {
            let tag = failure.image_id().and_then(|i| i.image_tag()).unwrap_or("");
            let code = failure.failure_code().map(|c| c.as_str()).unwrap_or("");
            if code == "ImageNotFound" || code == "ImageTagDoesNotMatchDigest" {
                continue;
            }
            found.insert(
                tag,
                Err(RemoteError {
                    operation: "ecr:BatchGetImage",
                    message: format!(
                        "{}:{tag}: {code}: {}",
                        repository.as_str(),
                        failure.failure_reason().unwrap_or("")
                    ),
                    transient: false,
                }),
            );
        }
        images
            .iter()
            .map(|i| {
                let r = found.get(i.tag.as_str()).cloned().unwrap_or(Ok(None));
                ((*i).clone(), r)
            })
            .collect()
    }
}

/// The tag's digest and, when its manifest is an index, the index's entries.
fn desired(digest: &str, media_type: Option<&str>, manifest: &str) -> Result<Desired, String> {
    Ok(Desired {
        digest: Digest::parse(digest)?,
        entries: index_entries(media_type, manifest)?,
    })
}

impl Registry for EcrRegistry {
    async fn resolve(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        type Key<'a> = ((Option<&'a str>, Option<&'a str>), &'a Repository);
        let mut groups: BTreeMap<Key, Vec<&ImageRef>> = BTreeMap::new();
        for image in images {
            let registry = (image.registry.as_deref(), image.region.as_deref());
            let group = groups.entry((registry, &image.repository)).or_default();
            if !group.iter().any(|i| i.tag == image.tag) {
                group.push(image);
            }
        }
        let calls: Vec<_> = groups
            .iter()
            .flat_map(|((registry, repository), tags)| {
                tags.chunks(IDS_PER_CALL)
                    .map(move |chunk| self.batch(*registry, repository, chunk))
            })
            .collect();
        debug!(
            tags = images.len(),
            calls = calls.len(),
            "resolving tags in ECR"
        );
        futures::stream::iter(calls)
            .buffer_unordered(CONCURRENT_CALLS)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }
}

/// Tokens are refreshed this long before ECR says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// A token whose expiry is already past (emulators) is still used for this long: at most one
/// refresh per deploy, never a refresh loop.
const TOKEN_FLOOR: Duration = Duration::from_secs(60);

/// One region's token and until when it is used.
type Cached = tokio::sync::Mutex<Option<(PullAuth, Instant)>>;

/// Pull credentials from GetAuthorizationToken, cached until shortly before expiry.
#[derive(Debug)]
pub struct EcrCredentials {
    clients: EcrClients,
    /// Per region ("" = the configured one): an ECR token is good in its region only.
    cached: std::sync::Mutex<HashMap<String, Arc<Cached>>>,
    fetches: AtomicU64,
    bound: Duration,
    /// The credentials of `[[registries]]` (SPEC §18), from the config.
    sites: Arc<Sites>,
}

impl EcrCredentials {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            clients: EcrClients::new(sdk),
            cached: Default::default(),
            fetches: AtomicU64::new(0),
            bound: CALL_BOUND,
            sites: Arc::default(),
        }
    }

    /// The same, with the credentials of the registries of the site's own.
    pub fn with_sites(mut self, sites: Arc<Sites>) -> Self {
        self.sites = sites;
        self
    }

    /// With another bound on the call and on waiting for another caller's call (tests).
    pub fn with_bound(mut self, bound: Duration) -> Self {
        self.bound = bound;
        self
    }

    /// GetAuthorizationToken calls made so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The cache of `region`'s token.
    fn slot(&self, region: Option<&str>) -> Arc<Cached> {
        let mut all = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(region.unwrap_or_default().to_owned())
            .or_default()
            .clone()
    }

    async fn fetch(&self, region: Option<&str>) -> Result<(PullAuth, Instant), RemoteError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let out = self
            .clients
            .region(region)
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| remote_error("ecr:GetAuthorizationToken", e))?;
        let bad = |message: String| RemoteError {
            operation: "ecr:GetAuthorizationToken",
            message,
            transient: false,
        };
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| bad("no authorization data in the answer".into()))?;
        let token = data.authorization_token().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("the token is not base64 text".into()))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad("the token is not user:password".into()))?;
        let endpoint = data.proxy_endpoint().unwrap_or_default();
        let registry_host = endpoint
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let left = data
            .expires_at()
            .map(|t| Duration::from_secs(t.secs().max(0) as u64).saturating_sub(now_unix))
            .unwrap_or_default();
        let valid_for = left.saturating_sub(TOKEN_MARGIN).max(TOKEN_FLOOR);
        let auth = PullAuth {
            username: username.to_owned(),
            password: password.to_owned(),
            registry_host,
        };
        Ok((auth, Instant::now() + valid_for))
    }
}

impl Credentials for EcrCredentials {
    fn site_auth(&self, host: &str) -> Option<PullAuth> {
        self.sites.get(host).map(|s| s.auth.clone())
    }

    /// Single flight, bounded: callers wait for one GetAuthorizationToken at a time, but never
    /// longer than the bound; past it a caller makes its own call (also bounded). So a hung
    /// call delays a pull by at most twice the bound, and never stalls every pull.
    async fn pull_auth(&self, region: Option<&str>) -> Result<PullAuth, RemoteError> {
        const OP: &str = "ecr:GetAuthorizationToken";
        let slot = self.slot(region);
        let Ok(mut cached) = tokio::time::timeout(self.bound, slot.lock()).await else {
            warn!("another GetAuthorizationToken call is taking long; making one more");
            return bounded(OP, self.bound, self.fetch(region))
                .await
                .map(|(auth, _)| auth);
        };
        if let Some((auth, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(auth.clone());
        }
        let (auth, until) = bounded(OP, self.bound, self.fetch(region)).await?;
        *cached = Some((auth.clone(), until));
        Ok(auth)
    }
}

#[cfg(test)]
mod tests {
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_ecr::config::Credentials;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::event::Tag;
    use crate::ports::Credentials as _;

    const BOUND: Duration = Duration::from_millis(500);

    /// An ECR endpoint that accepts connections, reads the requests and never answers.
    async fn hung_endpoint() -> SdkConfig {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        // No SDK timeouts here: the adapter's own bound must end the calls.
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("eu-west-2"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await
    }

    #[tokio::test]
    async fn a_hung_batch_get_image_ends_as_a_transient_error_after_the_bound() {
        let registry = EcrRegistry::new(&hung_endpoint().await).with_bound(BOUND);
        let image = ImageRef::new(
            None,
            Repository::parse("shop/web").unwrap(),
            Tag::parse("prod").unwrap(),
        );
        let started = Instant::now();
        let resolved = registry.resolve(std::slice::from_ref(&image)).await;
        assert!(started.elapsed() < BOUND * 3, "{:?}", started.elapsed());
        let err = resolved[&image].clone().expect_err("no answer");
        assert!(
            err.transient,
            "retried later, its messages back on the queue: {err}"
        );
        assert_eq!(err.operation, "ecr:BatchGetImage");
    }

    #[tokio::test]
    async fn a_hung_get_authorization_token_delays_each_pull_by_at_most_twice_the_bound() {
        let credentials = Arc::new(EcrCredentials::new(&hung_endpoint().await).with_bound(BOUND));
        let started = Instant::now();
        let pulls: Vec<_> = (0..6)
            .map(|_| {
                let c = credentials.clone();
                tokio::spawn(async move {
                    let r = c.pull_auth(None).await;
                    (r, started.elapsed())
                })
            })
            .collect();
        for pull in pulls {
            let (r, took) = pull.await.unwrap();
            let err = r.expect_err("no answer");
            assert!(err.transient, "{err}");
            assert!(took < BOUND * 2 + BOUND / 2, "one pull waited {took:?}");
        }
    }
}
