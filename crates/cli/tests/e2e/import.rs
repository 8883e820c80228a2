//! Imported certificates: watched, deployed, replaced, exported, renewed only with an account.

use serde_json::Value;

use crate::common::{bought_certificate, names, set, shown_serial};
use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn imported_certificates_are_watched_deployed_and_renewed_only_with_an_account() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let dir = tempfile::TempDir::new().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (chain, key, serial) = bought_certificate(&["shop.test", "www.shop.test"], 200, 1);
    let (cert_file, key_file) = (write("shop.pem", &chain), write("shop.key", &key));
    let ssl = dir.path().join("ssl");

    // A key that belongs to another certificate is refused.
    let (_, other_key, _) = bought_certificate(&["shop.test"], 200, 9);
    let err = env
        .fails(
            3,
            &["cert", "import", "shop", "--cert", &cert_file, "--key", &write("o.key", &other_key)],
        )
        .await;
    assert!(err.contains("does not belong to the certificate"), "{err}");

    let out = env
        .ok(&[
            "cert",
            "import",
            "shop",
            "--cert",
            &cert_file,
            "--key",
            &key_file,
            "--deploy",
            &format!("files:dir={}", ssl.display()),
            "--deploy",
            &format!("command:env > {}", dir.path().join("env.txt").display()),
        ])
        .await;
    assert!(out.contains("Imported shop (shop.test, www.shop.test)"), "{out}");
    // The command gets the facts, not certhub's own settings.
    let env_seen = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert!(env_seen.contains("CERTHUB_CERT_NAME=shop"), "{env_seen}");
    assert!(!env_seen.contains("CERTHUB_DATA_DIR"), "{env_seen}");
    assert_eq!(std::fs::read_to_string(ssl.join("fullchain.pem")).unwrap(), chain);
    let show = env.show("shop").await;
    assert_eq!(show["state"], "valid");
    assert_eq!(show["account"], Value::Null);
    assert_eq!(shown_serial(&show), serial);
    assert_eq!(show["issuer"], "Bought Elsewhere OV CA", "{show}");
    assert_eq!(names(&show["sans"]), set(&["shop.test", "www.shop.test"]));

    // Watched, not ordered.
    let out = env.run(&["renew", "--due"]).await;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("0 renewed, 1 not due"), "{stdout}{stderr}");
    assert!(stderr.contains("not renewed by ACME") && !stderr.contains("warning"), "{stderr}");
    let err = env.fails(3, &["cert", "request", "shop"]).await;
    assert!(err.contains("was imported and has no ACME account"), "{err}");

    // The same file again changes nothing; its successor replaces it and is deployed.
    let out = env.ok(&["cert", "import", "shop", "--cert", &cert_file, "--key", &key_file]).await;
    assert!(out.contains("nothing imported"), "{out}");
    let (chain2, key2, serial2) = bought_certificate(&["shop.test", "www.shop.test"], 20, 2);
    // One file holding the chain and the key.
    let combined = write("shop2.pem", &format!("{chain2}{key2}"));
    env.ok(&["cert", "import", "shop", "--cert", &combined]).await;
    assert_eq!(shown_serial(&env.show("shop").await), serial2);
    assert_eq!(std::fs::read_to_string(ssl.join("fullchain.pem")).unwrap(), chain2);
    // Expiring within 30 days: said on every run.
    let out = env.run(&["renew", "--due"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 20 days less the seconds since it was made: 19 or 20 whole days, by the second.
    assert!(
        ["19", "20"].iter().any(|d| stderr.contains(&format!("warning: shop expires in {d} days"))),
        "{stderr}"
    );
    let history = env.ok(&["cert", "history", "shop"]).await;
    assert_eq!(history.matches("imported").count(), 2, "{history}");

    // PKCS#12, with its password; a wrong one is refused.
    let out = tempfile::TempDir::new().unwrap();
    let out_dir = out.path().to_str().unwrap();
    env.ok(&["cert", "export", "shop", "--format", "pkcs12", "--out", out_dir, "--password", "pw"])
        .await;
    let p12 = out.path().join("shop.p12");
    let p12 = p12.to_str().unwrap();
    let err = env.fails(3, &["cert", "import", "pfx", "--pkcs12", p12, "--password", "nope"]).await;
    assert!(err.contains("password"), "{err}");
    env.ok(&["cert", "import", "pfx", "--pkcs12", p12, "--password", "pw"]).await;
    assert_eq!(shown_serial(&env.show("pfx").await), serial2);

    // With an account, ACME renews it.
    let (chain3, key3, _) = bought_certificate(&["acme.test"], 200, 3);
    env.ok(&[
        "cert",
        "import",
        "moving",
        "--cert",
        &write("m.pem", &chain3),
        "--key",
        &write("m.key", &key3),
        "--account",
        "le",
        "--challenge",
        &env.http01(),
    ])
    .await;
    env.ok(&["renew", "moving"]).await;
    env.verify_issued("moving", &["acme.test"]).await;
}
