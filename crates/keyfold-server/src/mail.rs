//! The outbox worker: delivers queued email.
//!
//! Mail is written to the `outbox` table in the same transaction as the change that caused
//! it, so a crash can delay a message but never lose it or send one for a change that rolled
//! back. The worker claims due messages with a lease (safe with several API replicas), sends
//! them — over SMTP when configured, and as `.eml` files in the outbox directory when one is
//! set (`keyfold dev`) — and on failure retries with exponential back-off.

use std::path::PathBuf;
use std::time::Duration;

use keyfold_domain::model::{Email, OutboxMessage};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;

use crate::config::{ConfigError, EmailConfig};
use crate::state::AppState;

/// Where mail goes.
#[derive(Debug, Clone)]
pub struct Mailer {
    from: Mailbox,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    outbox_dir: Option<PathBuf>,
    log_messages: bool,
}

impl Mailer {
    pub fn from_config(c: &EmailConfig) -> Result<Self, ConfigError> {
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| ConfigError(format!("email.from {:?}: {e}", c.from)))?;
        let smtp = match &c.smtp {
            None => None,
            Some(s) => {
                let mut b = if s.starttls {
                    AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                        .map_err(|e| ConfigError(format!("email.smtp.host: {e}")))?
                } else {
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                }
                .port(s.port)
                .timeout(Some(Duration::from_secs(20)));
                let password = match (&s.password, &s.password_file) {
                    (Some(p), _) => Some(p.expose().to_string()),
                    (None, Some(f)) => Some(
                        std::fs::read_to_string(f)
                            .map_err(|e| ConfigError(format!("email.smtp.password_file: {e}")))?
                            .trim()
                            .to_string(),
                    ),
                    (None, None) => None,
                };
                if let (Some(u), Some(p)) = (&s.username, password) {
                    b = b.credentials(Credentials::new(u.clone(), p));
                }
                Some(b.build())
            }
        };
        Ok(Self {
            from,
            smtp,
            outbox_dir: c.outbox_dir.clone(),
            log_messages: c.log_messages,
        })
    }

    async fn deliver(&self, msg: &OutboxMessage) -> Result<(), String> {
        if msg.kind != "email" {
            return Err(format!("unknown outbox message kind {:?}", msg.kind));
        }
        let email: Email =
            serde_json::from_str(&msg.payload).map_err(|e| format!("bad email payload: {e}"))?;
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|e| format!("bad recipient {:?}: {e}", email.to))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .message_id(Some(format!("<{}@keyfold>", msg.id)))
            .body(email.body.clone())
            .map_err(|e| format!("building message: {e}"))?;
        if let Some(dir) = &self.outbox_dir {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("outbox dir: {e}"))?;
            let path = dir.join(format!("{}.eml", msg.id));
            let tmp = dir.join(format!(".{}.eml.tmp", msg.id));
            tokio::fs::write(&tmp, message.formatted())
                .await
                .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            tracing::info!(to = %email.to, file = %path.display(), "email written to the outbox directory");
        }
        if self.log_messages {
            tracing::info!(to = %email.to, subject = %email.subject, body = %email.body, "email (development: contents logged)");
        }
        if let Some(smtp) = &self.smtp {
            smtp.send(message).await.map_err(|e| format!("smtp: {e}"))?;
            tracing::info!(to = %email.to, "email sent over SMTP");
        }
        Ok(())
    }
}

/// Seconds before retry `attempt` (1-based): 2, 4, 8, … capped at an hour.
fn backoff_secs(attempt: i64) -> i64 {
    2_i64.saturating_pow(attempt.clamp(1, 12) as u32).min(3600)
}

/// Runs until `shutdown` flips: claims due mail, delivers it, records the outcome.
pub async fn run_outbox_worker(
    state: AppState,
    mailer: Mailer,
    mut shutdown: watch::Receiver<bool>,
) {
    const LEASE_SECS: i64 = 120;
    loop {
        let now = state.clock.now();
        match state
            .store
            .claim_outbox(now, now.plus_secs(LEASE_SECS), 16)
            .await
        {
            Ok(batch) => {
                for msg in &batch {
                    match mailer.deliver(msg).await {
                        Ok(()) => {
                            if let Err(e) =
                                state.store.outbox_sent(&msg.id, state.clock.now()).await
                            {
                                tracing::warn!(id = %msg.id, error = %e, "could not mark mail sent; it may be sent again");
                            }
                        }
                        Err(why) => {
                            let retry = state.clock.now().plus_secs(backoff_secs(msg.attempts));
                            tracing::warn!(id = %msg.id, attempt = msg.attempts, error = %why, "mail delivery failed; will retry");
                            let _ = state.store.outbox_failed(&msg.id, &why, retry).await;
                        }
                    }
                }
                if batch.len() == 16 {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "outbox claim failed"),
        }
        tokio::select! {
            _ = state.outbox.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_secs(1), 2);
        assert_eq!(backoff_secs(3), 8);
        assert_eq!(backoff_secs(40), 3600);
    }
}
