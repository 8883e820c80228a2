//! The audit log's checks: the chain verified, against anchors kept outside it, and anchors
//! made (and sent to a notification channel) of where it stands.

use certhub_store::Store;

use crate::error::{Kind, fail};

fn broken(b: certhub_store::audit::ChainBreak) -> anyhow::Error {
    anyhow::anyhow!("the audit log is broken at entry {}: {}", b.id, b.reason)
}

/// Verifies the chain of the audit log; how many entries it holds.
pub async fn verify(store: &Store) -> anyhow::Result<i64> {
    store.verify_audit().await?.map_err(broken)
}

/// Verifies the chain and that it still holds every entry `anchors` name (lines made by
/// [`anchor`]); how many entries it holds. `source` names where the anchors came from, for
/// messages.
pub async fn verify_anchors(store: &Store, anchors: &[&str], source: &str) -> anyhow::Result<i64> {
    if anchors.is_empty() {
        return Err(fail(
            Kind::Invalid,
            format!("{source} holds no anchor; make one with `certhub audit anchor`"),
        ));
    }
    match store.verify_audit_anchors(anchors).await {
        Err(certhub_store::Error::Unreadable(why)) => {
            Err(fail(Kind::Invalid, format!("{source}: {why}")))
        }
        other => other?.map_err(broken),
    }
}

/// An anchor of where the audit log stands (a line to keep outside it), after verifying the
/// chain (an anchor of a broken log would vouch for it); sent to notification channel
/// `channel` too, when named.
pub async fn anchor(store: &Store, channel: Option<&str>) -> anyhow::Result<String> {
    if let Err(b) = store.verify_audit().await? {
        return Err(anyhow::anyhow!(
            "the audit log is broken at entry {}: {}; no anchor made",
            b.id,
            b.reason
        ));
    }
    let Some(anchor) = store.audit_anchor().await? else {
        return Err(fail(Kind::Invalid, "the audit log is empty: nothing to anchor"));
    };
    if let Some(name) = channel {
        let channel = store.channel(name).await?.ok_or_else(|| {
            fail(Kind::NotFound, format!("no notification channel named {name:?}"))
        })?;
        let notice = certhub_deploy::notify::Notice {
            event: "audit-anchor".into(),
            cert_name: "(audit log)".into(),
            summary: "audit log anchor: keep it to check the log against".into(),
            detail: Some(anchor.clone()),
        };
        certhub_deploy::notify::send(
            &reqwest::Client::new(),
            &channel.kind,
            &channel.config,
            &notice,
        )
        .await
        .map_err(|e| anyhow::anyhow!("sending the anchor to channel {name} failed: {e}"))?;
    }
    Ok(anchor)
}
