//! EventBridge: the results bus that deployment outcomes are put on ([`Bus`], the
//! [`EventBus`] port), and the rules that target a queue (what `doctor` checks).

use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::aws::remote_error;
use crate::ports::{EventBus, RemoteError};

/// An EventBridge bus that events are put on.
#[derive(Clone, Debug)]
pub struct Bus {
    client: aws_sdk_eventbridge::Client,
    name: String,
}

impl Bus {
    pub fn new(sdk: &SdkConfig, name: &str) -> Self {
        Self {
            client: aws_sdk_eventbridge::Client::new(sdk),
            name: name.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts one event; a rejected entry is an error naming why.
    pub async fn put(
        &self,
        source: &str,
        detail_type: &str,
        detail: String,
    ) -> Result<(), RemoteError> {
        let entry = PutEventsRequestEntry::builder()
            .source(source)
            .detail_type(detail_type)
            .event_bus_name(&self.name)
            .detail(detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| remote_error("events:PutEvents", e))?;
        if out.failed_entry_count() > 0 {
            let why: Vec<&str> = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect();
            return Err(RemoteError {
                operation: "events:PutEvents",
                message: format!("entry rejected: {}", why.join("; ")),
                transient: false,
            });
        }
        Ok(())
    }
}

impl EventBus for Bus {
    fn name(&self) -> &str {
        Bus::name(self)
    }

    fn put<'a>(
        &'a self,
        source: &'a str,
        detail_type: &'a str,
        detail: String,
    ) -> futures::future::BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(Bus::put(self, source, detail_type, detail))
    }
}

/// The EventBridge rules on `bus` (`None`: the default bus) that target `arn`
/// (`events:ListRuleNamesByTarget`).
pub async fn rules_targeting(
    sdk: &SdkConfig,
    arn: &str,
    bus: Option<&str>,
) -> Result<Vec<String>, RemoteError> {
    let out = aws_sdk_eventbridge::Client::new(sdk)
        .list_rule_names_by_target()
        .target_arn(arn)
        .set_event_bus_name(bus.map(str::to_owned))
        .send()
        .await
        .map_err(|e| remote_error("events:ListRuleNamesByTarget", e))?;
    Ok(out.rule_names().to_vec())
}
