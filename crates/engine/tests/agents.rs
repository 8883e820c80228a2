//! The hub's agent authority, made once and kept in the store for every hub on it.

use certhub_engine::{Config, Engine, Settings, SharedSettings};

#[tokio::test]
async fn the_agent_authority_is_made_once_and_shared_through_the_store() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = certhub_store::Store::open(dir.path()).await.unwrap();
    let config = Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
    let engine = Engine::with_settings(
        store.clone(),
        config.clone(),
        SharedSettings::new(Settings::default()),
    );
    let first = engine.agent_ca("hub-a.example").await.unwrap();
    // Another hub on the same store, later: the same authority, not one of its own.
    let other = Engine::with_settings(store, config, SharedSettings::new(Settings::default()));
    let second = other.agent_ca("hub-b.example").await.unwrap();
    assert_eq!(first.fingerprint(), second.fingerprint());
    assert!(first.cert_pem().contains("BEGIN CERTIFICATE"));
    // What one signs names its agent.
    let (csr, _) = certhub_engine::agent_ca::agent_request().unwrap();
    let (signed, _) = second.sign_agent(&csr, "db-01").unwrap();
    let der = pem::parse(&signed).unwrap().into_contents();
    assert_eq!(certhub_engine::agent_ca::agent_id(&der).as_deref(), Some("db-01"));
}
