//! The CAA pre-check against records in a real BIND zone: a name CAA forbids fails before the
//! CA is asked (Pebble itself never checks CAA, so only the pre-check can stop it), naming
//! the record, found by climbing the tree or through a CNAME; a critical tag nobody knows
//! forbids; issuewild governs wildcards only; `cert test` says it per identifier.

use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn caa_is_checked_before_the_ca_is_asked() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.bind
        .update(
            "update add forbid.test. 60 CAA 0 issue \";\"\n\
             update add alias.test. 60 CNAME forbid.test.\n\
             update add crit.test. 60 CAA 128 tbs \"x\"\n\
             update add wild.test. 60 CAA 0 issuewild \";\"",
        )
        .await;
    let dns = env.rfc2136();
    let add = |name: &'static str, domains: &'static [&'static str]| {
        let dns = dns.clone();
        let env = &env;
        async move {
            let mut args = vec!["cert", "add", name, "--account", "le", "--challenge", &dns];
            for d in domains {
                args.extend(["-d", d]);
            }
            env.ok(&args).await;
        }
    };
    for (name, domains, says) in [
        ("sub", &["a.b.forbid.test"][..], "forbid.test CAA 0 issue \";\""),
        ("alias", &["alias.test"][..], "issue \";\" permits no CA"),
        ("crit", &["crit.test"][..], "critical tag \"tbs\""),
        ("wild", &["wild.test", "*.wild.test"][..], "issuewild \";\""),
    ] {
        add(name, domains).await;
        let said = env.fails(4, &["cert", "request", name]).await;
        assert!(said.contains(says) && said.contains("nothing was ordered"), "{name}: {said}");
        let history = env.ok(&["cert", "history", name, "--json"]).await;
        let events: Vec<serde_json::Value> = serde_json::from_str(&history).unwrap();
        assert!(events.iter().all(|e| e["event"] != "ordered"), "{name} was ordered: {history}");
    }
    // cert test says it per identifier: the wildcard is forbidden, its base name is not.
    let tested = env.run(&["cert", "test", "wild", "--json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&tested.stdout).unwrap();
    let caa: Vec<&serde_json::Value> = report
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["detail"].as_str().unwrap().contains("CAA"))
        .collect();
    let of = |id: &str| caa.iter().find(|p| p["identifier"] == id).copied().unwrap();
    assert_eq!(of("*.wild.test")["works"], false, "{report}");
    assert_eq!(of("wild.test")["works"], true, "{report}");
    assert!(of("wild.test")["detail"].as_str().unwrap().starts_with("account le:"), "{report}");
    // A fallback account is used only where CAA lets its CA issue: here it names another CA,
    // so after the failures that would hand over, the account itself orders.
    use certhub_testkit::fake_ca::{FAKE_CA_CAA_IDENTITY, FakeCa};
    let fake = FakeCa::start().await;
    env.ok(&["account", "add", "fake", "--directory", &fake.url, "--agree-tos"]).await;
    env.bind.update("update add other.test. 60 CAA 0 issue \"pebble.example\"").await;
    env.ok(&[
        "cert",
        "add",
        "other",
        "--account",
        "le",
        "-d",
        "other.test",
        "--challenge",
        &dns,
        "--fallback-account",
        "fake",
        "--fallback-after",
        "1",
    ])
    .await;
    let tested = env.run(&["cert", "test", "other", "--json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&tested.stdout).unwrap();
    let fallback = report
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["detail"].as_str().unwrap().starts_with("fallback account fake:"))
        .unwrap_or_else(|| panic!("no CAA line for the fallback: {report}"));
    assert_eq!(fallback["works"], false, "{report}");
    let detail = fallback["detail"].as_str().unwrap();
    assert!(detail.contains(FAKE_CA_CAA_IDENTITY) && detail.contains("pebble.example"), "{detail}");
    // One failure in a row (the challenge cannot be answered: the record's zone is refused).
    env.bind.update("update add _acme-challenge.other.test. 60 CNAME nowhere.invalid.").await;
    let failed = env.run(&["cert", "request", "other"]).await;
    assert!(!failed.status.success());
    env.bind.update("update delete _acme-challenge.other.test. CNAME").await;
    env.ok(&["cert", "request", "other"]).await;
    env.verify_issued("other", &["other.test"]).await;
    let history = env.ok(&["cert", "history", "other"]).await;
    assert!(history.contains("fallback account fake not used"), "{history}");
    assert!(fake.state.lock().unwrap().requests.iter().all(|(p, _, _)| !p.contains("new-order")));
    // The plan says it too, before anything is asked.
    let plan = env.ok(&["cert", "preview", "other"]).await;
    assert!(plan.contains("CAA of other.test, fallback account fake:"), "{plan}");
    assert!(plan.contains("(not permitted)"), "{plan}");
    // A name without CAA records orders as ever.
    add("free", &["free.test"]).await;
    env.ok(&["cert", "request", "free"]).await;
    env.verify_issued("free", &["free.test"]).await;
}
