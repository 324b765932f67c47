//! The stages on the real adapters, as the daemon ([`crate::app`]) and the operator commands
//! ([`crate::commands`]) both build them: the deploy stage's settings, the sources of "what
//! should run", the executor, the results bus. Neither of those imports the other for this.

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::docker::DockerRuntime;
use crate::adapters::ecr::{EcrCredentials, EcrRegistry};
use crate::adapters::eventbridge::Bus;
use crate::adapters::registry::site::SiteRegistry;
use crate::adapters::registry::{RegistryHttp, Sites};
use crate::adapters::s3::S3Archives;
use crate::adapters::supply::SupplyFacts;
use crate::archive::resolve::ArchiveResolver;
use crate::archive::sources::Sources;
use crate::config::Settings;
use crate::deploy::{DeployConfig, Executor};
use crate::notify::Notifier;
use crate::ports::EventBus;
use crate::stats::Stats;
use crate::store::Store;

/// The deploy stage's settings from the configuration (validated: its policies compile).
pub fn deploy_config(settings: &Settings) -> DeployConfig {
    let d = &settings.deploy;
    DeployConfig {
        policies: settings.policies().unwrap_or_default(),
        gates: settings.gates().unwrap_or_default(),
        fleet: settings.fleet().unwrap_or_default(),
        health_timeout: Duration::from_secs(d.health_timeout_seconds),
        min_uptime: Duration::from_secs(d.min_uptime_seconds),
        stop_timeout: Duration::from_secs(d.stop_timeout_seconds),
        max_parallel: d.max_parallel as usize,
        remove_old_images: d.remove_old_images,
        mirrors: settings.mirrors(),
        scope: d.scope.clone(),
        keep_history: settings.keep_history(),
    }
}

/// Where "what should run" comes from, on the real adapters: ECR for tags, S3 for archives
/// (loaded into `runtime`, remembered in `store`), the registries of the site's own.
pub type RealSources =
    Sources<EcrRegistry, ArchiveResolver<S3Archives, DockerRuntime>, SiteRegistry>;
/// The deploy stage on the real adapters.
pub type RealExecutor = Executor<DockerRuntime, EcrCredentials>;

/// The real sources and deploy stage over `runtime` and `store`, as `run` and the commands
/// use them: `[[registries]]` read (an unreadable password or CA file is an error naming
/// it), the registries' HTTP client shared by the sources and the signature gate.
pub fn real_stages(
    settings: &Settings,
    sdk: &aws_config::SdkConfig,
    runtime: Arc<DockerRuntime>,
    store: Arc<Store>,
) -> Result<(RealSources, RealExecutor), String> {
    let sites = Arc::new(Sites::load(&settings.registries)?);
    let http = RegistryHttp::new(sites.clone());
    let registry = sources(sdk, &runtime, &store, settings, http.clone());
    let executor = Executor::new(
        runtime,
        Arc::new(EcrCredentials::new(sdk).with_sites(sites)),
        store,
        deploy_config(settings),
    )
    .with_supply(Arc::new(SupplyFacts::new(sdk).with_http(http)));
    Ok((registry, executor))
}

/// The real [`RealSources`].
fn sources(
    sdk: &aws_config::SdkConfig,
    runtime: &Arc<DockerRuntime>,
    store: &Arc<Store>,
    settings: &Settings,
    http: RegistryHttp,
) -> RealSources {
    let archives = ArchiveResolver::new(
        Arc::new(S3Archives::new(sdk)),
        runtime.clone(),
        store.clone(),
    )
    .with_mirrors(settings.mirrors())
    .with_scope(&settings.deploy.scope)
    .with_limits(settings.archives.clone());
    Sources {
        ecr: EcrRegistry::new(sdk),
        archives,
        sites: SiteRegistry::new(http),
    }
}

impl RealSources {
    /// Publishes the archive resolver's map sizes in `stats`.
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.archives = self.archives.with_stats(stats);
        self
    }

    /// Tells operators about refused archives through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.archives = self.archives.with_notifier(notifier);
        self
    }
}

/// The EventBridge bus of `[notify] event_bus` that deployment results are put on; `None`
/// when none is named.
pub fn event_bus(settings: &Settings, sdk: &aws_config::SdkConfig) -> Option<Arc<dyn EventBus>> {
    (!settings.notify.event_bus.is_empty())
        .then(|| Arc::new(Bus::new(sdk, &settings.notify.event_bus)) as Arc<dyn EventBus>)
}
