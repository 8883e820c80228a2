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

#[tokio::test(flavor = "multi_thread")]
async fn bad_provider_input_is_refused_naming_the_field_and_the_providers_words_reach_the_user() {
    let (env, apis) = with_fakes().await;
    let listed = env.ok(&["dns", "providers"]).await;
    assert!(listed.contains("cloudflare: Cloudflare"), "{listed}");
    assert!(listed.contains("dns-01:provider=route53,credential=NAME"), "{listed}");
    assert!(listed.contains("secret-access-key"), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["dns", "providers", "--json"]).await).unwrap();
    let gcloud = json.as_array().unwrap().iter().find(|p| p["provider"] == "gcloud").unwrap();
    assert_eq!(gcloud["fields"][0]["name"], "service-account");

    // A credential without its required field is not kept.
    let said = env.fails(3, &["credential", "add", "cf", "--kind", "cloudflare"]).await;
    assert!(said.contains("needs api-token"), "{said}");
    let said = env.fails(3, &["credential", "add", "cf", "--kind", "cloudfare"]).await;
    assert!(said.contains("certhub dns providers"), "{said}");

    // An unknown provider, a missing credential, one of another kind: refused, nothing added.
    store(&env, "do", "digitalocean", &apis.credential("digitalocean")).await;
    let add = ["cert", "add", "web", "--account", "le", "-d", "web.prov.test", "--challenge"];
    let refused = [
        ("dns-01:provider=cloudfare,credential=do", "no DNS provider \"cloudfare\""),
        ("dns-01:provider=cloudflare", "certhub credential add NAME --kind cloudflare"),
        ("dns-01:provider=cloudflare,credential=do", "do is a digitalocean credential"),
        (
            "dns-01:provider=cloudflare,credential=do,api-token=x",
            "api-token=… is not an option of dns-01:provider",
        ),
    ];
    for (spec, why) in refused {
        let said = env.fails(3, &[&add[..], &[spec]].concat()).await;
        assert!(said.contains(why), "{spec}: {said}");
    }
    let listed = env.ok(&["cert", "list"]).await;
    assert!(!listed.contains("web"), "{listed}");

    // A token the provider refuses: its own words, and nothing left behind.
    store(&env, "cf", "cloudflare", &[("api-token", "not-the-token".into())]).await;
    env.ok(&[&add[..], &["dns-01:provider=cloudflare,credential=cf"]].concat()).await;
    let out = env.run(&["renew", "web"]).await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("Invalid access token"), "{said}");
    assert!(said.contains("the cloudflare API answered HTTP 403: Invalid access token"), "{said}");
    assert!(apis.zones.all_txt().is_empty());
}
