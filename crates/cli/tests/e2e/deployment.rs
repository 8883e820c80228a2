//! Deployment to a real nginx: files and a reload on each renewal, its failure and retry.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{serial_of, shown_serial};
use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn deployment_reaches_a_real_nginx_and_each_renewal_reloads_it() {
    use certhub_testkit::nginx::Nginx;
    let mut opts = hostile();
    // Long enough for the steps below to run before the certificate is due, short enough to
    // see `renew --due` renew it on its own at the end.
    opts.validity_secs = Some(60);
    let env = Env::start(opts).await;
    env.account("le", &[]).await;
    let site = tempfile::TempDir::new().unwrap();
    let ssl = site.path().join("ssl");
    let block = site.path().join("reload-blocked");
    env.ok(&[
        "cert",
        "add",
        "web",
        "--account",
        "le",
        "-d",
        "web.test",
        "--challenge",
        &env.http01(),
        "--deploy",
        &format!("files:dir={};name=site", ssl.display()),
    ])
    .await;
    let out = env.ok(&["cert", "request", "web"]).await;
    assert!(out.contains("web"), "{out}");
    use std::os::unix::fs::PermissionsExt as _;
    let key_mode = std::fs::metadata(ssl.join("privkey.pem")).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // nginx starts on the deployed files and serves the issued certificate.
    let nginx = Nginx::start(&ssl.join("fullchain.pem"), &ssl.join("privkey.pem")).await;
    let root = env.pebble.root_pem(0).await;
    let served = || async {
        let chain = nginx
            .served_chain("web.test", &root)
            .await
            .unwrap_or_else(|e| panic!("{e}\nnginx log:\n{}", nginx.log()));
        assert!(chain.len() >= 2, "nginx serves the whole chain");
        serial_of(&chain[0])
    };
    let first = shown_serial(&env.show("web").await);
    assert_eq!(served().await, first);

    // A reload task after the files; it fails while the block file exists.
    let reload = format!(
        "command:test ! -e {} && {};name=reload;timeout=30",
        block.display(),
        nginx.reload_command()
    );
    env.ok(&["deploy", "add", "web", &reload]).await;
    let dry = env.ok(&["deploy", "run", "web", "--dry-run"]).await;
    assert!(dry.contains("site") && dry.contains("reload") && dry.contains("dry run"), "{dry}");

    // Renewal: new files, reload, and nginx serves the new serial.
    env.ok(&["renew", "web"]).await;
    let second = shown_serial(&env.show("web").await);
    assert_ne!(second, first);
    let wait_for = |want: String| {
        let served = &served;
        async move {
            certhub_testkit::wait_until(
                "nginx to serve the new certificate",
                Duration::from_secs(20),
                || {
                    let want = want.clone();
                    async move { (served().await == want).then_some(()) }
                },
            )
            .await
        }
    };
    wait_for(second.clone()).await;

    // The reload fails: the certificate is issued and its files written, the failure is
    // reported and recorded, and nginx keeps serving the previous certificate.
    std::fs::write(&block, "").unwrap();
    let err = env.fails(1, &["renew", "web"]).await;
    assert!(err.contains("deploying it failed") && err.contains("reload"), "{err}");
    let third = shown_serial(&env.show("web").await);
    assert_ne!(third, second);
    assert_eq!(served().await, second);
    let list: Value =
        serde_json::from_str(&env.ok(&["deploy", "list", "web", "--json"]).await).unwrap();
    assert_eq!(list[0]["status"], "up to date", "{list}");
    assert_eq!(list[1]["status"], "failed", "{list}");
    assert!(list[1]["last_detail"].as_str().unwrap().contains("exited with status 1"), "{list}");

    // The next cron run retries the pending reload although nothing is due; failing again,
    // it is not retried at every run, but after a wait that grows with the failures.
    let err = env.fails(1, &["renew", "--due"]).await;
    assert!(
        err.contains("reload")
            && err.contains("failure 2 in a row; renew --due retries after")
            && err.contains("`certhub deploy run web` at once"),
        "{err}"
    );
    let out = env.ok(&["renew", "--due"]).await;
    assert!(out.contains("Nothing is due now"), "{out}");
    let list: Value =
        serde_json::from_str(&env.ok(&["deploy", "list", "web", "--json"]).await).unwrap();
    assert_eq!((&list[1]["status"], &list[1]["failures"]), (&json!("failed"), &json!(2)));
    let table = env.ok(&["deploy", "list", "web"]).await;
    assert!(table.contains("failed (2 times in a row)"), "{table}");
    assert_eq!(served().await, second);
    // Once it is fixed, the next cron run after the wait (brought forward here) delivers it.
    std::fs::remove_file(&block).unwrap();
    let store = env.store().await;
    let seen = store.cert("web").await.unwrap().unwrap().updated_at;
    assert!(store.set_cert_check("web", 0, None, seen).await.unwrap());
    drop(store);
    let out = env.ok(&["renew", "--due"]).await;
    assert!(out.contains("1 not due (1 with pending deployments done)"), "{out}");
    wait_for(third.clone()).await;
    let list: Value =
        serde_json::from_str(&env.ok(&["deploy", "list", "web", "--json"]).await).unwrap();
    assert_eq!((&list[1]["status"], &list[1]["failures"]), (&json!("up to date"), &json!(0)));
    // Done: not looked at again before its renewal time.
    let out = env.ok(&["renew", "--due"]).await;
    assert!(out.contains("Nothing is due now") && !out.contains("pending"), "{out}");

    // Once 75% of the lifetime has passed, `renew --due` renews and deploys on its own.
    certhub_testkit::wait_until("renew --due to renew", Duration::from_secs(90), || async {
        env.ok(&["renew", "--due"]).await.contains("1 renewed").then_some(())
    })
    .await;
    let fourth = shown_serial(&env.show("web").await);
    assert_ne!(fourth, third);
    wait_for(fourth).await;

    let history = env.ok(&["cert", "history", "web"]).await;
    assert!(history.contains("deployed") && history.contains("deploy-failed"), "{history}");
}
