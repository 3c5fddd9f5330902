//! A Lambda of your own that uses a linked mailbox: each "Gmail Message Received" event
//! that the scheduled run publishes (route it here with an EventBridge rule, see the
//! README) gets the label `LABEL_ID` (a label id such as `Label_7`, from
//! `users.labels.list`). The mailbox needs the `gmail.modify` scope.
//!
//! The whole OAuth side is one call, [`AuthorizedGmail::from_env`]: the same environment
//! as the deployed functions (`TOKEN_PARAM`, or `MAILBOXES_PATH` and the event's account),
//! the token kept in memory across warm invocations and refreshed only when it expires,
//! written back under the grant-keeping rule; a revoked grant is a typed
//! `ReauthorizationRequired`, never a browser.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use gmail_oauth::AuthorizedGmail;
use gmail_oauth::store::{ParameterRepository, SsmParameters};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

type Gmail = AuthorizedGmail<ParameterRepository<SsmParameters>>;

/// The part of the event's detail this function uses (`docs/event-detail.schema.json`).
/// (`EventBridgeEvent` wants its detail serializable too.)
#[derive(Deserialize, Serialize)]
struct NewMail {
    account: String,
    id: String,
}

#[derive(Serialize)]
struct Labelled {
    account: String,
    id: String,
    label_ids: Vec<String>,
}

/// A failure as Lambda reports it: `errorType` is the crate's (`ReauthorizationRequired`,
/// `Upstream`, ...), so an alarm can filter on it.
#[derive(Debug)]
struct Failed(gmail_oauth::Error);

impl From<Failed> for Diagnostic {
    fn from(failed: Failed) -> Self {
        Diagnostic {
            error_type: failed.0.error_type().into(),
            error_message: gmail_oauth::error::Chain(&failed.0).to_string(),
        }
    }
}

/// One client per mailbox, kept by the execution environment.
struct Labeller {
    label: String,
    many_mailboxes: bool,
    clients: Mutex<HashMap<String, Arc<Gmail>>>,
}

impl Labeller {
    async fn client(&self, account: &str) -> Result<Arc<Gmail>, gmail_oauth::Error> {
        let key = if self.many_mailboxes { account } else { "" };
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(key) {
            return Ok(client.clone());
        }
        let client = Arc::new(Gmail::from_env(self.many_mailboxes.then_some(account)).await?);
        clients.insert(key.to_owned(), client.clone());
        Ok(client)
    }

    async fn handle(&self, event: EventBridgeEvent<NewMail>) -> Result<Labelled, Failed> {
        let mail = event.detail;
        let gmail = self.client(&mail.account).await.map_err(Failed)?;
        let changed = gmail
            .modify_labels(&mail.id, &[self.label.as_str()], &[])
            .await
            .map_err(Failed)?;
        tracing::info!(account = %mail.account, id = %mail.id, "labelled");
        Ok(Labelled {
            account: mail.account,
            id: changed.id,
            label_ids: changed.label_ids,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    gmail_oauth::logging::init_lambda();
    let label = std::env::var("LABEL_ID")
        .ok()
        .filter(|l| !l.is_empty())
        .ok_or("LABEL_ID is not set: the label id to add (users.labels.list)")?;
    let labeller = Labeller {
        label,
        many_mailboxes: std::env::var("MAILBOXES_PATH").is_ok_and(|p| !p.is_empty()),
        clients: Mutex::new(HashMap::new()),
    };
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<EventBridgeEvent<NewMail>>| {
            let labeller = &labeller;
            async move { labeller.handle(event.payload).await }
        },
    ))
    .await
}
