//! E-mail through an SMTP relay (`[notify] smtp`), for custodial hosts without a results
//! bus: one message per `rolled_back`, `rejected` or `failed` deployment — the outcomes a
//! person must act on — delivered like a webhook (off the deploy path, a few tries). The
//! password never reaches a log line; the relay is named by host and port only.
//!
//! lettre (SMTP client, STARTTLS through the rustls the agent already links).

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{DeploymentNotice, Notice, short};
use crate::config::Smtp;
use crate::store::Outcome;

/// The relay and the envelope.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `smtp://host:port` (no credentials): how logs name it.
    label: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("relay", &self.label)
            .finish()
    }
}

/// The password of `s`: inline, or read from `password_file` (trailing newline dropped).
fn password(s: &Smtp) -> Result<Option<String>, String> {
    if !s.password.is_empty() {
        return Ok(Some(s.password.clone()));
    }
    if s.password_file.is_empty() {
        return Ok(None);
    }
    std::fs::read_to_string(&s.password_file)
        .map(|p| Some(p.trim_end_matches(['\r', '\n']).to_owned()))
        .map_err(|e| format!("notify.smtp.password_file {}: {e}", s.password_file))
}

impl Mailer {
    /// A mailer for validated settings `s`; `timeout` bounds each connection and command.
    pub fn new(s: &Smtp, timeout: Duration) -> Result<Self, String> {
        let (host, port) = s
            .relay
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("notify.smtp.relay {:?} is not host:port", s.relay))?;
        let builder = if s.starttls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("notify.smtp.relay {host}: TLS: {e}"))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        };
        let mut builder = builder.port(port).timeout(Some(timeout));
        if let Some(p) = password(s)? {
            builder = builder.credentials(Credentials::new(s.username.clone(), p));
        }
        let mailbox = |key: &str, a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("notify.smtp.{key} {a:?}: {e}"))
        };
        Ok(Self {
            transport: builder.build(),
            from: mailbox("from", &s.from)?,
            to: s
                .to
                .iter()
                .map(|t| mailbox("to", t))
                .collect::<Result<_, _>>()?,
            label: format!("smtp://{host}:{port}"),
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether `notice` is e-mailed at all.
    pub fn wants(notice: &Notice) -> bool {
        matches!(notice, Notice::Deployment(d) if d.outcome.needs_attention())
    }

    /// One attempt at sending the message for `d`. `Err((permanent, reason))`.
    pub async fn send(&self, d: &DeploymentNotice) -> Result<(), (bool, String)> {
        let (subject, body) = message(d);
        let mut m = Message::builder().from(self.from.clone()).subject(subject);
        for to in &self.to {
            m = m.to(to.clone());
        }
        let email = m
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| (true, format!("cannot build the message: {e}")))?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| (e.is_permanent(), e.to_string()))
    }

    /// `doctor`: the relay answers (and takes the credentials when set).
    pub async fn check(&self) -> Result<(), String> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the relay did not answer NOOP".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Subject and plain-text body of the message for `d`: host, container, from → to, reason.
pub fn message(d: &DeploymentNotice) -> (String, String) {
    let image = crate::event::source_text(&d.repository, &d.tag);
    let subject = format!(
        "ecr-deployd on {}: {} {} ({image})",
        d.host,
        d.container,
        d.outcome.in_words()
    );
    let from = d.from_digest.as_deref().unwrap_or("-");
    let mut body = format!(
        "{}\n\nHost:      {} (fleet name {}, wave {})\n{:<10} {}\nImage:     {image}\nFrom:      {from}\nTo:        {}\n",
        Notice::Deployment(d.clone()).text(),
        d.host,
        d.name,
        d.wave,
        format!("{}:", capitalised(d.kind)),
        d.container,
        d.to_digest,
    );
    if let Some(p) = &d.platform_digest {
        body.push_str(&format!("Platform:  {p}\n"));
    }
    body.push_str(&format!(
        "Outcome:   {}\nTrigger:   {}\nReason:    {}\nTook:      {} ms\n",
        d.outcome.as_str(),
        d.trigger,
        d.error.as_deref().unwrap_or("-"),
        d.durations_ms.total
    ));
    if d.outcome == Outcome::RolledBack {
        body.push_str(&format!(
            "\nThe previous container runs again; {} is blocked for {} until a different digest is pushed.\n",
            short(&d.to_digest),
            d.container
        ));
    }
    (subject, body)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{Durations, wave_key};

    fn notice(outcome: &str) -> DeploymentNotice {
        DeploymentNotice {
            host: "edge-01".into(),
            name: "edge-01".into(),
            wave: 2,
            wave_key: wave_key(2),
            kind: "container",
            container: "web".into(),
            repository: "shop/web".into(),
            tag: "prod".into(),
            from_digest: Some(format!("sha256:{}", "a".repeat(64))),
            to_digest: format!("sha256:{}", "b".repeat(64)),
            platform_digest: None,
            outcome: Outcome::parse(outcome).unwrap(),
            trigger: "event".into(),
            error: Some("health check failed".into()),
            durations_ms: Durations {
                total: 900,
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_message_names_host_container_image_both_digests_and_the_reason() {
        let (subject, body) = message(&notice("rolled_back"));
        assert_eq!(
            subject,
            "ecr-deployd on edge-01: web rolled back (shop/web:prod)"
        );
        for part in [
            "Host:      edge-01 (fleet name edge-01, wave 2)",
            "Container: web",
            &format!("From:      sha256:{}", "a".repeat(64)),
            &format!("To:        sha256:{}", "b".repeat(64)),
            "Reason:    health check failed",
            "bbbbbbbbbbbb is blocked for web",
        ] {
            assert!(body.contains(part), "{part} not in\n{body}");
        }
    }

    #[test]
    fn only_rollbacks_rejections_and_failures_are_mailed() {
        for (outcome, mailed) in [
            ("succeeded", false),
            ("rolled_back", true),
            ("rejected", true),
            ("failed", true),
        ] {
            assert_eq!(
                Mailer::wants(&Notice::Deployment(notice(outcome))),
                mailed,
                "{outcome}"
            );
        }
    }

    #[test]
    fn an_unreadable_password_file_is_named_without_a_password() {
        let s = Smtp {
            relay: "127.0.0.1:2525".into(),
            from: "a@b".into(),
            to: vec!["c@d".into()],
            starttls: false,
            username: "u".into(),
            password: String::new(),
            password_file: "/nonexistent/smtp-password".into(),
        };
        let e = Mailer::new(&s, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("/nonexistent/smtp-password"), "{e}");
        let ok = Mailer::new(
            &Smtp {
                password_file: String::new(),
                password: "hunter2".into(),
                ..s
            },
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            format!("{ok:?}"),
            "Mailer { relay: \"smtp://127.0.0.1:2525\" }"
        );
    }
}
