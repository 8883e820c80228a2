//! CA accounts: External Account Binding, key rollover, contact updates and deactivation.

use serde_json::{Value, json};

use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn external_account_binding_is_required_and_accepted() {
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let mut opts = hostile();
    opts.eab_required = true;
    opts.eab_keys = vec![("kid-1".into(), hmac.into())];
    let env = Env::start(opts).await;
    let bundle = env.ca_bundle();
    let base = [
        "account",
        "add",
        "eab",
        "--directory",
        &env.pebble.directory_url,
        "--ca-bundle",
        &bundle,
        "--agree-tos",
    ];
    let err = env.fails(3, &base).await;
    assert!(err.contains("External Account Binding") && err.contains("--eab-kid"), "{err}");
    let wrong = "AAAAZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let err =
        env.fails(4, &[&base[..], &["--eab-kid", "kid-1", "--eab-hmac-key", wrong]].concat()).await;
    assert!(err.contains("unauthorized"), "{err}");
    env.ok(&[&base[..], &["--eab-kid", "kid-1", "--eab-hmac-key", hmac]].concat()).await;
    env.add_http01("bound", "eab", "eab.test").await;
    env.ok(&["cert", "request", "bound"]).await;
    env.verify_issued("bound", &["eab.test"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rollover_then_issuance_with_the_new_key() {
    let env = Env::start(hostile()).await;
    env.account("le", &["--key-type", "rsa-2048"]).await;
    env.ok(&["account", "rollover", "le", "--key-type", "ec-p384"]).await;
    let list: Value = serde_json::from_str(&env.ok(&["account", "list", "--json"]).await).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["key_type"], "ec-p384");
    let shown: Value =
        serde_json::from_str(&env.ok(&["account", "show", "le", "--json"]).await).unwrap();
    assert_eq!(shown["ca"]["status"], "valid", "{shown}");
    env.ok(&[
        "cert",
        "add",
        "after",
        "--account",
        "le",
        "-d",
        "roll.test",
        "--key-type",
        "rsa-2048",
        "--challenge",
        &env.http01(),
    ])
    .await;
    env.ok(&["cert", "request", "after"]).await;
    env.verify_issued("after", &["roll.test"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn account_lifecycle() {
    let env = Env::start(hostile()).await;
    let bundle = env.ca_bundle();
    let err = env
        .fails(
            3,
            &[
                "account",
                "add",
                "x",
                "--directory",
                &env.pebble.directory_url,
                "--ca-bundle",
                &bundle,
            ],
        )
        .await;
    assert!(err.contains("--agree-tos"), "{err}");
    let out = env
        .run(&[
            "account",
            "add",
            "quiet",
            "--directory",
            &env.pebble.directory_url,
            "--ca-bundle",
            &bundle,
            "--agree-tos",
        ])
        .await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no contact email"));
    env.ok(&["account", "update", "quiet", "--email", "new@example.com"]).await;
    let shown: Value =
        serde_json::from_str(&env.ok(&["account", "show", "quiet", "--json"]).await).unwrap();
    assert_eq!(shown["ca"]["contact"], json!(["mailto:new@example.com"]));
    env.fails(3, &["account", "deactivate", "quiet"]).await;
    env.ok(&["account", "deactivate", "quiet", "--yes"]).await;
    let list: Value = serde_json::from_str(&env.ok(&["account", "list", "--json"]).await).unwrap();
    assert_eq!(list[0]["status"], "deactivated");
}
