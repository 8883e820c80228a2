//! The hub's own records: jobs, settings, users, tokens and sessions, notification channels.

use serde_json::json;

use crate::common::{Db, assert_already_exists, assert_not_found};

on_both_backends!(
    users_and_tokens_keep_only_hashes,
    the_first_admin_is_made_once_with_its_audit_entry,
    notification_channels_keep_their_secrets_sealed_and_notices_happen_once,
    expired_tokens_and_idle_sessions_are_removed,
    jobs_keep_their_steps_in_order_and_end_once,
    hub_settings_round_trip,
    an_event_of_an_unknown_kind_is_passed_by_alone,
    the_agent_authority_is_kept_once_and_sealed,
    a_join_token_is_spent_once_and_labels_decide_what_an_agent_deploys,
    a_challenge_an_agent_answers_goes_from_wanted_to_removed,
    on_postgresql_a_change_reaches_the_other_processes_at_once,
    a_credential_is_sealed_rotated_and_kept_while_a_certificate_names_it,
    users_are_disabled_demoted_and_removed_and_the_last_admin_stays,
    a_user_from_an_openid_provider_is_found_by_issuer_and_subject
);

async fn a_user_from_an_openid_provider_is_found_by_issuer_and_subject(db: Db) {
    let store = db.open().await;
    store.insert_user("ada", "$argon2id$v=19$a", "admin", None).await.unwrap();
    let entry = certhub_store::AuditEntry::new("ann (oidc)", "user.create", "ann", "127.0.0.1");
    store
        .insert_oidc_user("ann", "viewer", "https://id.example", "s-1", Some(&entry))
        .await
        .unwrap();
    let ann = store.oidc_user("https://id.example", "s-1").await.unwrap().expect("found");
    assert_eq!(
        (ann.name.as_str(), ann.role.as_str(), ann.password_hash.as_str()),
        ("ann", "viewer", "")
    );
    assert_eq!(ann.oidc_issuer.as_deref(), Some("https://id.example"));
    assert_eq!(ann.oidc_subject.as_deref(), Some("s-1"));
    // The same subject at another provider is someone else; a local user is no one's.
    assert!(store.oidc_user("https://other.example", "s-1").await.unwrap().is_none());
    assert_eq!(store.user("ada").await.unwrap().unwrap().oidc_issuer, None);
    // A name taken (locally, or by another provider's user) is refused, and nothing is half
    // made.
    assert_already_exists(
        store.insert_oidc_user("ada", "admin", "https://id.example", "s-2", None).await,
        "user",
        "ada",
    );
    assert!(store.oidc_user("https://id.example", "s-2").await.unwrap().is_none());
    // One user per subject at a provider.
    assert!(
        store.insert_oidc_user("ann2", "viewer", "https://id.example", "s-1", None).await.is_err()
    );
    assert!(store.user("ann2").await.unwrap().is_none());
    let entries = store.audit_entries(0, 10).await.unwrap();
    assert_eq!(entries.len(), 1, "the refused ones wrote nothing");
    assert_eq!(entries[0].actor, "ann (oidc)");
}

async fn jobs_keep_their_steps_in_order_and_end_once(db: Db) {
    let store = db.open().await;
    let job = store.insert_job("j1", "request", "web", None).await.unwrap();
    assert_eq!((job.status.as_str(), job.steps.len()), ("running", 0));
    for step in ["ordering", "validating a.example\nwith http-01", "issued"] {
        store.add_job_step("j1", step).await.unwrap();
    }
    let read = store.job("j1").await.unwrap().unwrap();
    // A line break inside a step does not split it.
    assert_eq!(read.steps, ["ordering", "validating a.example with http-01", "issued"]);
    store
        .finish_job("j1", certhub_store::JobStatus::Succeeded, "issued serial 01", None)
        .await
        .unwrap();
    // A job ends once: a later "interrupted" (a hub stopping) does not overwrite the outcome.
    store
        .finish_job("j1", certhub_store::JobStatus::Interrupted, "the hub stopped", None)
        .await
        .unwrap();
    let read = store.job("j1").await.unwrap().unwrap();
    assert_eq!(
        (read.status.as_str(), read.result.as_deref(), read.error),
        ("succeeded", Some("issued serial 01"), None)
    );
    // A failed job keeps its error whole.
    store.insert_job("j3", "request", "web", None).await.unwrap();
    let error = r#"{"type":"https://certhub.dev/problems/ca-refused","field":"identifiers"}"#;
    store.finish_job("j3", certhub_store::JobStatus::Failed, "refused", Some(error)).await.unwrap();
    let read = db.open().await.job("j3").await.unwrap().unwrap();
    assert_eq!((read.status.as_str(), read.error.as_deref()), ("failed", Some(error)));
    assert!(store.job("nope").await.unwrap().is_none());
    // Reopening (another hub, or a restart) reads it back.
    let again = db.open().await;
    assert_eq!(again.job("j1").await.unwrap().unwrap().steps.len(), 3);
    // Cleanup removes ended jobs only.
    store.insert_job("j2", "request", "api", None).await.unwrap();
    let removed = store.delete_jobs_before(i64::MAX).await.unwrap();
    assert_eq!(removed, 2);
    assert!(store.job("j1").await.unwrap().is_none());
    assert!(store.job("j3").await.unwrap().is_none());
    assert_eq!(store.job("j2").await.unwrap().unwrap().status, "running");
}

async fn hub_settings_round_trip(db: Db) {
    let store = db.open().await;
    assert_eq!(store.hub_settings().await.unwrap(), None);
    let settings = json!({ "policy": "30d", "check_interval": 60 });
    store.set_hub_settings(&settings, None).await.unwrap();
    store.set_hub_settings(&settings, None).await.unwrap();
    assert_eq!(db.open().await.hub_settings().await.unwrap(), Some(settings));
}

async fn expired_tokens_and_idle_sessions_are_removed(db: Db) {
    let store = db.open().await;
    store.insert_user("ada", "$argon2id$fake", "admin", None).await.unwrap();
    use certhub_store::TokenKind;
    let token = |id: &str, kind: TokenKind, expires_at: Option<i64>| certhub_store::TokenRecord {
        id: id.into(),
        user_name: "ada".into(),
        kind,
        label: "web session".into(),
        scopes: "cert:read".into(),
        expires_at,
        created_at: 0,
        last_used_at: None,
    };
    store.insert_token(&token("expired", TokenKind::Api, Some(1)), "h1", None).await.unwrap();
    store.insert_token(&token("session", TokenKind::Session, None), "h2", None).await.unwrap();
    // An API token labelled like a session is still an API token.
    store.insert_token(&token("api", TokenKind::Api, None), "h3", None).await.unwrap();
    // Nothing has been idle since the epoch: only the expired token goes.
    assert_eq!(store.delete_stale_tokens(0).await.unwrap(), 1);
    let far = i64::MAX / 2;
    assert_eq!(store.delete_stale_tokens(far).await.unwrap(), 1);
    let left = store.tokens(None).await.unwrap();
    assert_eq!(left.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["api"]);
    assert_eq!(left[0].kind, TokenKind::Api, "the kind is stored, whatever the label");
}

async fn notification_channels_keep_their_secrets_sealed_and_notices_happen_once(db: Db) {
    let store = db.open().await;
    store.record_event("old", certhub_store::EventKind::Issued, None).await.unwrap();
    // The cursor starts after the history that predates notifications.
    let start = store.notify_cursor().await.unwrap();
    assert!(store.events_after(start, 10).await.unwrap().is_empty());
    let channel = certhub_store::ChannelRecord {
        name: "ops".into(),
        kind: "slack".into(),
        config: json!({ "url": "https://hooks.slack.test/services/T0KEN-SECRET" }),
        events: vec!["renewed".into(), "expiring".into()],
    };
    store.insert_channel(&channel, None).await.unwrap();
    assert!(store.insert_channel(&channel, None).await.is_err(), "names are unique");
    assert_eq!(store.channel("ops").await.unwrap().as_ref(), Some(&channel));
    assert!(channel.wants("renewed") && !channel.wants("issued"));
    assert!(!format!("{channel:?}").contains("T0KEN"));
    let raw = db.raw().await;
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT config FROM notification_channels")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("T0KEN"), "the webhook URL is sealed");

    let id = store
        .record_event("web", certhub_store::EventKind::Revoked, Some("serial 1"))
        .await
        .unwrap();
    let pending = store.events_after(start, 10).await.unwrap();
    assert_eq!(pending.iter().map(|(_, e)| e.as_ref().unwrap().id).collect::<Vec<_>>(), [id]);
    store.set_notify_cursor(id).await.unwrap();
    assert_eq!(db.open().await.notify_cursor().await.unwrap(), id, "the cursor is stored");

    assert!(store.first_notice("web", "expiring", "serial 1").await.unwrap());
    assert!(!db.open().await.first_notice("web", "expiring", "serial 1").await.unwrap());
    assert!(store.first_notice("web", "expiring", "serial 2").await.unwrap());
    store.delete_channel("ops", None).await.unwrap();
    assert!(store.channels().await.unwrap().is_empty());
    assert!(store.delete_channel("ops", None).await.is_err());
}

async fn the_first_admin_is_made_once_with_its_audit_entry(db: Db) {
    let (a, b) = (db.open().await, db.open().await);
    let (ra, rb) = tokio::join!(
        a.create_first_admin("ada", "$argon2id$fake", "10.0.0.1"),
        b.create_first_admin("eve", "$argon2id$fake", "10.0.0.2"),
    );
    assert!(ra.is_ok() != rb.is_ok(), "exactly one setup wins: {ra:?} {rb:?}");
    assert_eq!(a.user_count().await.unwrap(), 1);
    let entries = a.audit_entries(0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].actor.as_str(), entries[0].action.as_str()), ("setup", "user.create"));
    assert_eq!(a.verify_audit().await.unwrap(), Ok(1));
}

async fn users_and_tokens_keep_only_hashes(db: Db) {
    let store = db.open().await;
    assert_eq!(store.user_count().await.unwrap(), 0);
    store.insert_user("ada", "$argon2id$v=19$fake", "admin", None).await.expect("user");
    assert_already_exists(store.insert_user("ada", "x", "viewer", None).await, "user", "ada");
    assert_eq!(store.user_count().await.unwrap(), 1);
    assert_eq!(store.user("ada").await.unwrap().unwrap().role, "admin");
    assert!(!format!("{:?}", store.user("ada").await.unwrap()).contains("argon2"));
    let token = certhub_store::TokenRecord {
        id: "t1".into(),
        user_name: "ada".into(),
        kind: certhub_store::TokenKind::Api,
        label: "ci".into(),
        scopes: "cert:read cert:key".into(),
        expires_at: None,
        created_at: 0,
        last_used_at: None,
    };
    store.insert_token(&token, &certhub_store::token_hash("s3cret"), None).await.expect("token");
    let (got, role) = store.verify_token("t1", "s3cret").await.unwrap().expect("valid");
    assert_eq!(got.scopes, "cert:read cert:key");
    assert_eq!(role, "admin");
    assert!(store.verify_token("t1", "wrong").await.unwrap().is_none());
    assert!(store.verify_token("t2", "s3cret").await.unwrap().is_none());
    let expired =
        certhub_store::TokenRecord { id: "t2".into(), expires_at: Some(1), ..token.clone() };
    store.insert_token(&expired, &certhub_store::token_hash("old"), None).await.expect("token");
    assert!(store.verify_token("t2", "old").await.unwrap().is_none(), "expired");
    let nobody = certhub_store::TokenRecord { id: "t3".into(), user_name: "bob".into(), ..token };
    assert_not_found(store.insert_token(&nobody, "h", None).await, "user", "bob");
    store.insert_user("bob", "$argon2id$v=19$fake", "viewer", None).await.expect("user");
    let bobs = certhub_store::TokenRecord { id: "t4".into(), user_name: "bob".into(), ..nobody };
    store.insert_token(&bobs, &certhub_store::token_hash("b"), None).await.expect("token");
    let ids = |v: Vec<certhub_store::TokenRecord>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let mut all = ids(store.tokens(None).await.unwrap());
    all.sort();
    assert_eq!(all, ["t1", "t2", "t4"]);
    assert_eq!(ids(store.tokens(Some("bob")).await.unwrap()), ["t4"]);
    store.delete_token("t1", None).await.expect("revoke");
    assert!(store.verify_token("t1", "s3cret").await.unwrap().is_none(), "revoked");
    assert_not_found(store.delete_token("t1", None).await, "token", "t1");
    // The secret is nowhere in the database.
    let raw = db.raw().await;
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM api_tokens").fetch_all(&raw).await.unwrap();
    assert!(hashes.iter().all(|h| h.len() == 64 && !h.contains("s3cret")));
}

/// An event this version cannot read (a newer hub's, on a shared database) comes back as an
/// error of its own, with its id, and the events around it still read.
async fn an_event_of_an_unknown_kind_is_passed_by_alone(db: Db) {
    let store = db.open().await;
    store.insert_account(&crate::common::account("acme")).await.unwrap();
    store.insert_cert(&crate::common::cert("web", "acme"), None).await.unwrap();
    let start = store.notify_cursor().await.unwrap();
    let first = store.record_event("web", certhub_store::EventKind::Issued, None).await.unwrap();
    let odd = store.record_event("web", certhub_store::EventKind::Expiring, None).await.unwrap();
    let last = store.record_event("web", certhub_store::EventKind::Revoked, None).await.unwrap();
    sqlx::query("UPDATE events SET kind = 'carrier-pigeon' WHERE id = $1")
        .bind(odd)
        .execute(&db.raw().await)
        .await
        .unwrap();
    let events = store.events_after(start, 10).await.unwrap();
    let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [first, odd, last]);
    assert!(events[0].1.is_ok() && events[2].1.is_ok());
    let err = events[1].1.as_ref().unwrap_err().to_string();
    assert!(err.contains("events row") && err.contains("carrier-pigeon"), "{err}");
}

async fn the_agent_authority_is_kept_once_and_sealed(db: Db) {
    use certhub_store::AgentAuthority;
    let store = db.open().await;
    assert_eq!(store.agent_authority().await.unwrap(), None);
    let made = |n: u8| AgentAuthority {
        cert_pem: format!("CERT {n}"),
        key_pem: zeroize::Zeroizing::new(format!("-----BEGIN PRIVATE KEY----- S3CRET{n}")),
    };
    assert_eq!(store.keep_agent_authority(&made(1)).await.unwrap(), made(1));
    // A second hub making its own at the same time gets the first one's.
    assert_eq!(store.keep_agent_authority(&made(2)).await.unwrap(), made(1));
    assert_eq!(db.open().await.agent_authority().await.unwrap(), Some(made(1)));
    assert!(!format!("{:?}", made(1)).contains("S3CRET"));
    let raw = db.raw().await;
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE name = 'agent_ca'")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("S3CRET"), "the key is sealed");
}

async fn a_join_token_is_spent_once_and_labels_decide_what_an_agent_deploys(db: Db) {
    use certhub_core::agent::{DeployReport, DeployState, Target};
    use certhub_store::{AgentTokenRecord, Change, NewAgent};
    let store = db.open().await;
    let mut changes = store.subscribe();
    let token = |id: &str, labels: &[&str], expires_at: i64| AgentTokenRecord {
        id: id.into(),
        token_hash: certhub_store::token_hash("secret"),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        created_by: "admin".into(),
        created_at: 0,
        expires_at,
        used_at: None,
        agent_id: None,
    };
    let later = certhub_core::time::now_ms() + 3_600_000;
    store.insert_agent_token(&token("t1", &["role=web"], later), None).await.unwrap();
    store.insert_agent_token(&token("t2", &["role=db"], later), None).await.unwrap();
    store.insert_agent_token(&token("old", &[], 1), None).await.unwrap();
    let agent = |id: &str, name: &str| NewAgent {
        id: id.into(),
        name: name.into(),
        cert_serial: "01".into(),
        hostname: "h".into(),
        os: "linux".into(),
        version: "1".into(),
    };
    let web = store.join_agent("t1", &agent("a1", "web-1"), None).await.unwrap();
    assert_eq!(web.labels, ["role=web"]);
    // Spent: a second join with it changes nothing.
    let err = store.join_agent("t1", &agent("a2", "web-2"), None).await.unwrap_err();
    assert!(matches!(err, certhub_store::Error::InUse { .. }), "{err}");
    // Expired: the same.
    let err = store.join_agent("old", &agent("a2", "web-2"), None).await.unwrap_err();
    assert!(matches!(err, certhub_store::Error::InUse { .. }), "{err}");
    // A name taken: the token stays unspent.
    let err = store.join_agent("t2", &agent("a3", "web-1"), None).await.unwrap_err();
    assert!(matches!(err, certhub_store::Error::AlreadyExists { .. }), "{err}");
    assert_eq!(store.agent_token("t2").await.unwrap().unwrap().used_at, None);
    store.join_agent("t2", &agent("a3", "db-1"), None).await.unwrap();
    assert_eq!(store.agents().await.unwrap().len(), 2);

    // A certificate for the web label, one for db-1 by name.
    store.insert_account(&crate::common::account("acme")).await.unwrap();
    store.insert_cert(&crate::common::cert("site", "acme"), None).await.unwrap();
    store.insert_cert(&crate::common::cert("db", "acme"), None).await.unwrap();
    let web_label = Target::parse("label:role=web").unwrap();
    store.set_cert_targets("site", &[web_label], None).await.unwrap();
    store.set_cert_targets("db", &[Target::Agent("db-1".into())], None).await.unwrap();
    assert_eq!(changes.recv().await.unwrap(), Change::Targets("site".into()));
    assert!(store.cert_is_targeted("site").await.unwrap());
    assert_eq!(store.cert_agents("site").await.unwrap(), ["a1"]);
    assert_eq!(store.cert_agents("db").await.unwrap(), ["a3"]);
    assert!(store.agent_deploys("a1", "site").await.unwrap());
    assert!(!store.agent_deploys("a1", "db").await.unwrap());
    // Nothing issued yet: nothing assigned to deploy.
    assert!(store.agent_assignments("a1").await.unwrap().is_empty());
    let issued = crate::common::issued("site", "0a");
    store.insert_issued(&issued, None).await.unwrap();
    assert_eq!(store.agent_assignments("a1").await.unwrap(), [("site".into(), "0a".into())]);
    // db-1 labelled for the web too: it deploys both.
    store.set_agent_labels("db-1", &["role=web".into()], None).await.unwrap();
    assert!(store.agent_deploys("a3", "site").await.unwrap());
    let report = DeployReport {
        cert: "site".into(),
        serial: "0a".into(),
        state: DeployState::Deployed,
        error: None,
        verified: vec![],
    };
    store.record_agent_deployment("a1", &report).await.unwrap();
    let first = store.agent_deployments(Some("site"), None).await.unwrap();
    // The same report again keeps the time of deployment.
    store.record_agent_deployment("a1", &report).await.unwrap();
    let again = store.agent_deployments(Some("site"), None).await.unwrap();
    assert_eq!(first[0].deployed_at, again[0].deployed_at);
    assert_eq!((again[0].agent_name.as_str(), again[0].state.as_str()), ("web-1", "deployed"));
    // Removed: its identity, labels and reports go; its targets by name stay, naming none.
    store.remove_agent("web-1", None).await.unwrap();
    assert_eq!(store.agent_by_id("a1").await.unwrap(), None);
    assert!(store.agent_deployments(Some("site"), None).await.unwrap().is_empty());
    assert_eq!(store.cert_agents("site").await.unwrap(), ["a3"]);
    // Deleting a certificate takes its targets and reports with it.
    store.delete_cert("db", None).await.unwrap();
    assert!(store.cert_targets("db").await.unwrap().is_empty());
}

async fn a_challenge_an_agent_answers_goes_from_wanted_to_removed(db: Db) {
    use certhub_core::agent::{ChallengeAction, ChallengeAnswer};
    use certhub_core::{ChallengeConfig, ChallengeKind, Identifier, PendingChallenge};
    use certhub_store::{ChallengeState, Change};
    let store = db.open().await;
    let mut changes = store.subscribe();
    let config = ChallengeConfig::Http01Listen { listen: "127.0.0.1:80".parse().unwrap() };
    let pending = |token: &str| PendingChallenge {
        cert: "site".into(),
        kind: ChallengeKind::Http01,
        identifier: Identifier::Dns("a.example".into()),
        token: token.into(),
        key_authorization: format!("{token}.thumb"),
    };
    let id = store.want_agent_challenge("a1", "site", &config, &pending("t1")).await.unwrap();
    let other = store.want_agent_challenge("a2", "db", &config, &pending("t2")).await.unwrap();
    assert_eq!(changes.recv().await.unwrap(), Change::Challenge("a1".into()));
    let open = store.open_agent_challenges(Some("a1")).await.unwrap();
    assert_eq!(open.len(), 1);
    let task = &open[0].task;
    assert_eq!((task.id, task.action, task.config.clone()), (id, ChallengeAction::Present, config));
    assert_eq!(task.pending(), pending("t1"));
    assert_eq!(store.open_agent_challenges(None).await.unwrap().len(), 2);
    // Another agent's answer is not found and changes nothing.
    let err = store.answer_agent_challenge("a2", id, &ChallengeAnswer::Presented).await;
    assert!(matches!(err, Err(certhub_store::Error::NotFound { .. })), "{err:?}");
    store.answer_agent_challenge("a1", id, &ChallengeAnswer::Presented).await.unwrap();
    assert_eq!(store.agent_challenge(id).await.unwrap().unwrap().state, ChallengeState::Presented);
    assert!(store.open_agent_challenges(Some("a1")).await.unwrap().is_empty());
    // Over: the agent is told to remove it, and its word deletes the row.
    store.agent_challenge_over("site", "t1").await.unwrap();
    let open = store.open_agent_challenges(Some("a1")).await.unwrap();
    assert_eq!(open[0].task.action, ChallengeAction::Remove);
    // A late presented answer does not bring it back.
    store.answer_agent_challenge("a1", id, &ChallengeAnswer::Presented).await.unwrap();
    assert_eq!(store.agent_challenge(id).await.unwrap().unwrap().state, ChallengeState::Cleanup);
    store.answer_agent_challenge("a1", id, &ChallengeAnswer::Removed).await.unwrap();
    assert_eq!(store.agent_challenge(id).await.unwrap(), None);
    // Said twice, it is still done.
    store.answer_agent_challenge("a1", id, &ChallengeAnswer::Removed).await.unwrap();
    // A failure keeps why.
    let failed = ChallengeAnswer::Failed { error: "port 80 is taken".into() };
    store.answer_agent_challenge("a2", other, &failed).await.unwrap();
    let kept = store.agent_challenge(other).await.unwrap().unwrap();
    assert_eq!(
        (kept.state, kept.error.as_deref()),
        (ChallengeState::Failed, Some("port 80 is taken"))
    );
    // Old ones are forgotten.
    assert_eq!(store.prune_agent_challenges(certhub_core::time::now_ms() + 1).await.unwrap(), 1);
    assert!(store.open_agent_challenges(None).await.unwrap().is_empty());
}

async fn on_postgresql_a_change_reaches_the_other_processes_at_once(db: Db) {
    use certhub_store::{Backend, Change};
    let (hub, other) = (db.open().await, db.open().await);
    let following = hub.follow_other_processes().await.unwrap();
    if hub.backend() == Backend::Sqlite {
        // Commands beside a hub on SQLite are found by the hub's periodic look.
        assert!(following.is_none());
        return;
    }
    let mut heard = hub.subscribe();
    let mut own = other.subscribe();
    other.insert_account(&crate::common::account("acme")).await.unwrap();
    other.insert_cert(&crate::common::cert("site", "acme"), None).await.unwrap();
    let web = certhub_core::agent::Target::parse("label:role=web").unwrap();
    other.set_cert_targets("site", std::slice::from_ref(&web), None).await.unwrap();
    let wait = std::time::Duration::from_secs(10);
    let got = tokio::time::timeout(wait, heard.recv()).await.expect("heard in time").unwrap();
    assert_eq!(got, Change::Targets("site".into()));
    // The process that made it told its own subscribers.
    assert_eq!(own.recv().await.unwrap(), Change::Targets("site".into()));
    // The hub's own change, heard once: not again through the database.
    hub.set_cert_targets("site", &[web], None).await.unwrap();
    assert_eq!(heard.recv().await.unwrap(), Change::Targets("site".into()));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(heard.try_recv().is_err(), "the hub heard its own change twice");
    // A process that does not follow the others hears only its own.
    assert!(own.try_recv().is_err(), "{:?}", own.try_recv());
}

async fn a_credential_is_sealed_rotated_and_kept_while_a_certificate_names_it(db: Db) {
    use certhub_core::secret::Secret;
    use std::collections::BTreeMap;
    let store = db.open().await;
    let fields = |secret: &str| -> BTreeMap<String, Secret> {
        [("key-name", "acme"), ("key-secret", secret)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Secret::new(v)))
            .collect()
    };
    store.insert_credential("dns", "tsig", &fields("b2xk"), None).await.unwrap();
    let again = store.insert_credential("dns", "tsig", &fields("x"), None).await;
    assert_already_exists(again, "credential", "dns");
    let kept = store.credential("dns").await.unwrap().unwrap();
    assert_eq!((kept.kind.as_str(), kept.fields["key-secret"].expose()), ("tsig", "b2xk"));
    store.rotate_credential("dns", &fields("bmV3"), None).await.unwrap();
    let rotated = store.credential("dns").await.unwrap().unwrap();
    assert_eq!(rotated.fields["key-secret"].expose(), "bmV3");
    assert!(rotated.updated_at > kept.updated_at);
    let none = store.rotate_credential("none", &fields("x"), None).await;
    assert_not_found(none, "credential", "none");
    // Named by a certificate's challenges (sealed), it is in use until they change.
    store.insert_account(&crate::common::account("acme")).await.unwrap();
    let mut cert = crate::common::cert("site", "acme");
    let spec = "dns-01:rfc2136=127.0.0.1:53,credential=dns";
    cert.challenges = vec![certhub_core::ChallengeSpec::parse(spec).unwrap()];
    store.insert_cert(&cert, None).await.unwrap();
    assert_eq!(store.credential_users("dns").await.unwrap(), ["site"]);
    let in_use = store.credentials_in_use().await.unwrap();
    assert_eq!(in_use.get("dns").map(Vec::as_slice), Some(&["site".to_string()][..]));
    let err = store.remove_credential("dns", None).await.unwrap_err();
    assert!(matches!(err, certhub_store::Error::InUse { .. }), "{err}");
    cert.challenges =
        vec![certhub_core::ChallengeSpec::parse("http-01:listen=0.0.0.0:80").unwrap()];
    store.update_cert(&cert, None).await.unwrap();
    assert!(store.credential_users("dns").await.unwrap().is_empty());
    store.remove_credential("dns", None).await.unwrap();
    assert_eq!(store.credential("dns").await.unwrap(), None);
    // No secret is stored in the clear.
    store.insert_credential("hook", "callback", &fields("cGxhaW4tc2VjcmV0"), None).await.unwrap();
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT fields FROM credentials WHERE name = 'hook'")
        .fetch_one(&db.raw().await)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("cGxhaW4tc2VjcmV0"));
}

async fn users_are_disabled_demoted_and_removed_and_the_last_admin_stays(db: Db) {
    use certhub_store::{TokenKind, TokenRecord, UserChange};
    let store = db.open().await;
    store.insert_user("root", "$argon2id$v=19$a", "admin", None).await.unwrap();
    store.insert_user("ann", "$argon2id$v=19$b", "operator", None).await.unwrap();
    let token = TokenRecord {
        id: "t-ann".into(),
        user_name: "ann".into(),
        kind: TokenKind::Api,
        label: "ci".into(),
        scopes: "cert:read".into(),
        expires_at: None,
        created_at: 0,
        last_used_at: None,
    };
    store.insert_token(&token, &certhub_store::token_hash("s3cret"), None).await.unwrap();
    assert!(store.verify_token("t-ann", "s3cret").await.unwrap().is_some());

    // Disabled: the token stops at once; enabled: it works again.
    store.change_user("ann", &UserChange::Disabled(true), None).await.unwrap();
    assert!(store.user("ann").await.unwrap().unwrap().disabled_at.is_some());
    assert!(store.verify_token("t-ann", "s3cret").await.unwrap().is_none());
    store.change_user("ann", &UserChange::Disabled(false), None).await.unwrap();
    assert!(store.verify_token("t-ann", "s3cret").await.unwrap().is_some());

    // The only enabled admin is not demoted, disabled or removed.
    for change in
        [UserChange::Role("viewer".into()), UserChange::Disabled(true), UserChange::Remove]
    {
        let e = store.change_user("root", &change, None).await.unwrap_err();
        assert!(e.to_string().contains("last enabled admin"), "{change:?}: {e}");
    }
    // Changes together are made all or none, and judged where they end.
    let both = [
        (UserChange::Password("$argon2id$v=19$new".into()), None),
        (UserChange::Role("viewer".into()), None),
    ];
    let e = store.change_user_all("root", &both).await.unwrap_err();
    assert!(e.to_string().contains("last enabled admin"), "{e}");
    assert_eq!(store.user("root").await.unwrap().unwrap().password_hash, "$argon2id$v=19$a");
    let back =
        [(UserChange::Role("viewer".into()), None), (UserChange::Role("admin".into()), None)];
    store.change_user_all("root", &back).await.unwrap();
    // With another admin, it may be; a role change reaches the token at once.
    store.change_user("ann", &UserChange::Role("admin".into()), None).await.unwrap();
    assert_eq!(store.verify_token("t-ann", "s3cret").await.unwrap().unwrap().1, "admin");
    store.change_user("root", &UserChange::Role("viewer".into()), None).await.unwrap();
    let e = store.change_user("ann", &UserChange::Disabled(true), None).await.unwrap_err();
    assert!(e.to_string().contains("last enabled admin"), "{e}");
    store.change_user("ann", &UserChange::Password("$argon2id$v=19$c".into()), None).await.unwrap();
    assert_eq!(store.user("ann").await.unwrap().unwrap().password_hash, "$argon2id$v=19$c");

    // Removed, with the tokens.
    let root = TokenRecord { id: "t-root".into(), user_name: "root".into(), ..token };
    store.insert_token(&root, &certhub_store::token_hash("r00t"), None).await.unwrap();
    store.change_user("root", &UserChange::Remove, None).await.unwrap();
    assert!(store.user("root").await.unwrap().is_none());
    assert!(store.tokens(Some("root")).await.unwrap().is_empty());
    assert!(store.verify_token("t-root", "r00t").await.unwrap().is_none());
    let e = store.change_user("nobody", &UserChange::Disabled(true), None).await.unwrap_err();
    assert!(matches!(e, certhub_store::Error::NotFound { .. }), "{e}");
    assert_eq!(store.tokens(Some("ann")).await.unwrap().len(), 1);
}
