//! Outgoing mail: the `Mailer` port and its SMTP adapter (lettre). Identity sends only
//! two messages for now, a password-reset link and an address-verification link, as
//! plain text; the notify service will own templates and languages later.
//!
//! SMTP here is plain (no TLS in this build): the platform hands its mail to a relay on
//! its own network (a sidecar or the cluster's MTA), which delivers it onwards. With no
//! relay configured, mail is not sent and the service logs that it was not.

use futures::future::BoxFuture;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// One message to one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Where identity's mail goes.
pub trait Mailer: Send + Sync + 'static {
    fn send(&self, mail: Mail) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// Sends through an SMTP relay, at most [`SmtpMailer::IN_FLIGHT`] messages at once: a
/// flood of requests (or a slow relay) drops mail with a warning rather than piling up
/// tasks and connections.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl SmtpMailer {
    /// `url` is `smtp://host:port` (the relay); `from` the sender, e.g.
    /// `Festival <no-reply@festival.example>`.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let relay = url.strip_prefix("smtp://").ok_or_else(|| anyhow::anyhow!("the relay must be smtp://host:port"))?;
        let (host, port) = relay.rsplit_once(':').ok_or_else(|| anyhow::anyhow!("the relay needs a port"))?;
        let port: u16 = port.trim_end_matches('/').parse()?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        Ok(Self {
            transport,
            from: from.parse()?,
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(Self::IN_FLIGHT)),
        })
    }

    pub const IN_FLIGHT: usize = 32;
}

impl Mailer for SmtpMailer {
    fn send(&self, mail: Mail) -> BoxFuture<'static, anyhow::Result<()>> {
        let (transport, from) = (self.transport.clone(), self.from.clone());
        let slot = self.slots.clone().try_acquire_owned();
        Box::pin(async move {
            let _slot = slot.map_err(|_| anyhow::anyhow!("{} messages already on their way", Self::IN_FLIGHT))?;
            let message = Message::builder()
                .from(from)
                .to(mail.to.parse()?)
                .subject(mail.subject)
                .header(ContentType::TEXT_PLAIN)
                .body(mail.body)?;
            transport.send(message).await?;
            Ok(())
        })
    }
}

/// No relay configured: nothing is sent (development without a mail sink).
pub struct NoMailer;

impl Mailer for NoMailer {
    fn send(&self, mail: Mail) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            // The subject only: the body holds a secret link.
            tracing::warn!(subject = %mail.subject, "no mail relay configured (mail.smtp_url): message not sent");
            Ok(())
        })
    }
}
