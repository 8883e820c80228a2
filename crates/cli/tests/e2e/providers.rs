//! dns-01 through DNS providers' APIs: each provider's client talks to the provider's own
//! address, where a fake written from its API documentation answers (through a proxy, with
//! TLS from a test CA) and keeps the zone in a real BIND, so a real Pebble validates.

use certhub_testkit::dns_apis::ProviderApis;

use crate::support::{Env, hostile};

/// Stores `fields` as credential `name` of kind `kind`, each field from a file.
async fn store(env: &Env, name: &str, kind: &str, fields: &[(&str, String)]) {
    let dir = tempfile::TempDir::new().unwrap();
    let mut args = vec!["credential".to_string(), "add".into(), name.into(), "--kind".into()];
    args.push(kind.into());
    for (field, value) in fields {
        let path = dir.path().join(field);
        std::fs::write(&path, value).unwrap();
        args.push("--from-file".into());
        args.push(format!("{field}={}", path.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&args).await;
}

/// Env with the providers' fakes in the way of every certhub it runs.
async fn with_fakes() -> (Env, ProviderApis) {
    let mut env = Env::start(hostile()).await;
    let apis = ProviderApis::start(&["test"], env.bind.updater()).await;
    env.vars = vec![
        ("HTTPS_PROXY".into(), apis.proxy_url.clone()),
        ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
        ("SSL_CERT_FILE".into(), apis.ca_file.display().to_string()),
    ];
    env.account("le", &[]).await;
    (env, apis)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_documented_provider_api_answers_a_wildcard_order_and_is_cleaned_up() {
    let (env, apis) = with_fakes().await;
    for provider in apis.providers() {
        let before = apis.requests().len();
        store(&env, provider, provider, &apis.credential(provider)).await;
        // A wildcard and its base name: two values at one name, added and removed apart.
        let domain = format!("{provider}.prov.test");
        let spec = format!("dns-01:provider={provider},credential={provider}");
        let wildcard = format!("*.{domain}");
        let add = ["cert", "add", provider, "--account", "le", "-d", &wildcard, "-d", &domain];
        env.ok(&[&add[..], &["--challenge", &spec]].concat()).await;
        let renewed = env.run(&["renew", provider]).await;
        assert!(
            renewed.status.success(),
            "{provider}: {}\nrequests: {:#?}",
            String::from_utf8_lossy(&renewed.stderr),
            apis.requests()
        );
        env.verify_issued(provider, &[&format!("a.{domain}"), &domain]).await;
        assert!(
            apis.zones.all_txt().is_empty(),
            "{provider} left {:?}\n{:#?}",
            apis.zones.all_txt(),
            apis.requests()
        );
        assert!(env.bind.txt_values(&format!("_acme-challenge.{domain}")).await.is_empty());
        assert!(apis.requests().len() > before, "{provider}'s API was not asked");
    }
}
