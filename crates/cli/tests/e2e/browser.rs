//! The web UI in a real headless Chromium, against the real binary and Pebble: set up, add a
//! CA account, create a certificate, preview, test, request, see it valid, download, read the
//! history and the audit log; on a phone-sized screen too; with no JavaScript error.
//! Screenshots of the main pages go to `target/tmp/screenshots` (or `CERTHUB_SCREENSHOTS`).

use std::path::PathBuf;
use std::time::Duration;

use certhub_testkit::browser::Browser;

use crate::support::{Env, hostile};

const PASSWORD: &str = "a long enough password";

fn screenshot_dir() -> PathBuf {
    std::env::var_os("CERTHUB_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"))
}

/// Fails on any error the browser logged but a form answered 400 (a validation message).
async fn no_js_errors(browser: &Browser, page: &str) {
    let mut severe = browser.severe_logs().await;
    severe.retain(|m| !m.contains("the server responded with a status of 400"));
    assert!(severe.is_empty(), "{page}: the browser reported errors: {severe:#?}");
}

/// Whether the page fits the window's width (nothing to scroll sideways).
async fn fits_width(browser: &Browser) -> bool {
    browser
        .script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            serde_json::json!([]),
        )
        .await
        == true
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_runs_the_hub_in_a_browser() {
    let env = Env::start(hostile()).await;
    let http_port = env.pebble.http_port.to_string();
    let hub = env.serve(&["--probe-http-port", &http_port], true).await;
    let token = hub.setup_token.clone().expect("a first start writes a setup token");
    let shots = screenshot_dir();
    let browser = Browser::start(1280, 900).await;

    // Nothing is open before setup: every page leads to it.
    browser.goto(&hub.url("/certificates")).await;
    browser.goto(&hub.url("/login")).await;
    browser.find("#token").await;
    assert!(browser.url().await.ends_with("/setup"), "{}", browser.url().await);
    // A wrong token is named next to its field, and nothing is created.
    browser.fill("#token", "not-the-token").await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", PASSWORD).await;
    browser.fill("#password2", PASSWORD).await;
    browser.click("button[type=submit]").await;
    let err = browser.wait_for_text("#token + .err", "setup token", Duration::from_secs(10)).await;
    assert!(err.contains("wrong or used"), "{err}");
    browser.screenshot(&shots.join("setup-error.png")).await;
    browser.fill("#token", &token).await;
    browser.fill("#password", PASSWORD).await;
    browser.fill("#password2", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("h1", "Settings", Duration::from_secs(20)).await;

    // A CA account: the terms must be agreed to, and the form says so next to the box.
    browser.click("#accounts summary").await;
    browser.fill("#acct-name", "pebble").await;
    browser.select("#directory", "custom").await;
    browser.fill("#directory_url", &env.pebble.directory_url).await;
    browser.fill("#email", "ops@example.com").await;
    let bundle = std::fs::read_to_string(&env.pebble.listener_ca_path).unwrap();
    browser.set_value("#ca_bundle_pem", &bundle).await;
    browser.click("#accounts button[type=submit]").await;
    let err =
        browser.wait_for_text("#accounts .err", "terms of service", Duration::from_secs(10)).await;
    assert!(err.contains("agreeing"), "{err}");
    browser.set_value("#ca_bundle_pem", &bundle).await;
    browser.click("#agree_tos").await;
    browser.click("#accounts button[type=submit]").await;
    browser.wait_for_text(".flash", "Account pebble registered", Duration::from_secs(30)).await;
    assert!(browser.text("#accounts table").await.contains("valid"));
    no_js_errors(&browser, "settings").await;

    // A notification channel to a real SMTP server, checked with "send test".
    let smtp = certhub_testkit::smtp::SmtpServer::start().await;
    browser.click("#notifications summary").await;
    browser.fill("#channel_name", "mail").await;
    browser.fill("#smtp_host", "127.0.0.1").await;
    browser.select("#smtp_tls", "none").await;
    browser.fill("#smtp_from", "certhub@example.com").await;
    browser.click("#notifications button[type=submit]").await;
    // The missing port is fine (a default); the missing recipient is not.
    let err =
        browser.wait_for_text("#notifications .err", "recipient", Duration::from_secs(10)).await;
    assert!(err.contains("at least one"), "{err}");
    browser.fill("#smtp_port", &smtp.addr.port().to_string()).await;
    browser.select("#smtp_tls", "none").await;
    browser.fill("#smtp_to", "ops@example.com").await;
    browser.click("#notifications button[type=submit]").await;
    browser.wait_for_text(".flash", "Channel mail added", Duration::from_secs(10)).await;
    browser.click("#notifications button.link:not(.danger)").await;
    browser
        .wait_for_text("#channel-result", "✓ emailed ops@example.com", Duration::from_secs(30))
        .await;
    assert!(smtp.wait_for(1).await[0].contains("test notification from certhub"));
    browser.screenshot(&shots.join("settings.png")).await;

    // Certificates > New: a missing domain is named next to its field.
    browser.goto(&hub.url("/certificates/new")).await;
    browser.fill("#name", "web").await;
    browser.select("#account", "pebble").await;
    browser.select("#challenge_method", "http-01:listen").await;
    browser.fill("#challenge_value", &format!("127.0.0.1:{http_port}")).await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for_text("#domains + .err", "at least one", Duration::from_secs(10)).await;
    browser.screenshot(&shots.join("new-certificate-error.png")).await;
    browser.fill("#domains", "www.browser.test\nbrowser.test").await;
    browser.click("form.card button[type=submit]").await;

    // Preview: the plan, with nothing sent.
    let plan =
        browser.wait_for_text(".plan", "Requesting web would", Duration::from_secs(20)).await;
    assert!(plan.contains("www.browser.test"), "{plan}");
    assert!(plan.contains("http-01"), "{plan}");
    browser.screenshot(&shots.join("certificate-preview.png")).await;

    // Test: each name probed as the CA would.
    browser.click(".toolbar button:not(.primary)").await;
    let tested = browser.wait_for_text("#action-result", "✓", Duration::from_secs(30)).await;
    assert!(!tested.contains('✗'), "{tested}");

    // Request: the steps show live until it is issued.
    browser.click(".toolbar button.primary").await;
    let done =
        browser.wait_for_text("#action-result .job", "succeeded", Duration::from_secs(120)).await;
    assert!(done.contains("issued serial"), "{done}");
    browser.screenshot(&shots.join("certificate-requested.png")).await;
    let mail = smtp.wait_for(2).await.remove(1);
    assert!(mail.contains("Subject: [certhub] web was issued"), "{mail}");
    browser.goto(&hub.url("/certificates/web")).await;
    assert_eq!(browser.text("h1 .state").await, "valid");
    assert!(browser.text(".facts").await.contains("Valid until"));

    // Download the chain, then the key as PEM (an audited key download).
    browser.click("details.download summary").await;
    browser.click("#download-button").await;
    let pem = std::fs::read_to_string(browser.downloaded("web.pem").await).unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE") && !pem.contains("PRIVATE KEY"), "{pem}");
    std::fs::remove_file(browser.downloads.path().join("web.pem")).unwrap();
    browser.click("details.download input[value=pem-key]").await;
    browser.click("#download-button").await;
    let pem = std::fs::read_to_string(browser.downloaded("web.pem").await).unwrap();
    assert!(pem.contains("PRIVATE KEY"), "the key download has the key");
    let root = env.pebble.root_pem(0).await;
    let chain: String = pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("CERTIFICATE"))
        .collect();
    crate::support::verify_chain(&chain, &root, &["www.browser.test", "browser.test"]);

    // A certificate bought elsewhere, imported: a key that is not its own is named as such.
    let (chain, key, _) = crate::common::bought_certificate(&["shop.browser.test"], 200, 5);
    let (_, other_key, _) = crate::common::bought_certificate(&["shop.browser.test"], 200, 6);
    browser.goto(&hub.url("/certificates")).await;
    browser.click("a[href='/certificates/import']").await;
    browser.fill("#name", "shop").await;
    browser.set_value("#cert_pem", &chain).await;
    browser.set_value("#key_pem", &other_key).await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for_text("#key_pem + .err", "does not belong", Duration::from_secs(10)).await;
    browser.set_value("#key_pem", &key).await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for_text("h1", "shop", Duration::from_secs(20)).await;
    assert_eq!(browser.text("h1 .state").await, "valid");
    assert!(browser.text(".facts").await.contains("Bought Elsewhere"));

    // Its PKCS#12, downloaded, comes back in through the file field: a wrong password is
    // named next to the file.
    browser.click("details.download summary").await;
    browser.click("details.download input[value=pkcs12]").await;
    browser.fill("#p12pw", "p12 secret").await;
    browser.click("#download-button").await;
    let p12 = browser.downloaded("shop.p12").await;
    let p12 = p12.to_str().unwrap();
    browser.goto(&hub.url("/certificates/import")).await;
    browser.fill("#name", "shop-p12").await;
    browser.fill("#pkcs12", p12).await;
    browser.fill("#password", "not it").await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for_text("#pkcs12 + .err", "password", Duration::from_secs(10)).await;
    browser.fill("#pkcs12", p12).await;
    browser.fill("#password", "p12 secret").await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for_text("h1", "shop-p12", Duration::from_secs(20)).await;
    assert!(browser.text(".facts").await.contains("shop.browser.test"));

    // Editing: the renewal policy on Advanced, checked next to its field; the challenges on
    // Authorization; a deployment task added and removed.
    browser.goto(&hub.url("/certificates/web?tab=advanced")).await;
    browser.click("details.edit summary").await;
    browser.fill("#renew_at", "120%").await;
    browser.click("details.edit button[type=submit]").await;
    browser.wait_for_text("#renew_at + .err", "120%", Duration::from_secs(10)).await;
    browser.fill("#renew_at", "30d").await;
    browser.click("details.edit button[type=submit]").await;
    browser.wait_for_text(".flash", "renews at 30d", Duration::from_secs(10)).await;
    assert!(browser.text(".facts").await.contains("30d"));
    browser.goto(&hub.url("/certificates/web?tab=authorization")).await;
    browser.click("details.edit summary").await;
    browser.set_value("#challenges", "http-01:nowhere").await;
    browser.click("details.edit button[type=submit]").await;
    browser.wait_for_text("#challenges + .err", "http-01", Duration::from_secs(10)).await;
    browser.set_value("#challenges", &format!("http-01:listen=127.0.0.1:{http_port}")).await;
    browser.click("details.edit button[type=submit]").await;
    browser.wait_for_text(".flash", "1 challenge configuration", Duration::from_secs(10)).await;
    let files = tempfile::TempDir::new().unwrap();
    browser.goto(&hub.url("/certificates/web?tab=deployment")).await;
    browser.click("details.edit summary").await;
    browser.set_value("#deploy", &format!("files:dir={};name=copy", files.path().display())).await;
    browser.click("details.edit button[type=submit]").await;
    browser.wait_for_text(".flash", "Added copy", Duration::from_secs(10)).await;
    browser.screenshot(&shots.join("certificate-deployment.png")).await;
    browser.click("button[aria-label='Remove task copy']").await;
    browser.wait_for_text(".flash", "Removed copy", Duration::from_secs(10)).await;

    // Settings at run time: a bad policy is named next to its field, a good one is saved
    // and becomes the default the certificates show.
    browser.goto(&hub.url("/settings")).await;
    browser.fill("#renewal_policy", "often").await;
    browser.fill("#renewal_workers", "2").await;
    browser.click("#renewal button[type=submit]").await;
    browser.wait_for_text("#renewal_policy + .err", "often", Duration::from_secs(10)).await;
    browser.fill("#renewal_policy", "70%").await;
    browser.click("#renewal button[type=submit]").await;
    let saved = browser.wait_for_text(".flash", "Saved", Duration::from_secs(10)).await;
    assert!(saved.contains("renewal policy 70%") && saved.contains("2 renewal workers"), "{saved}");
    browser.goto(&hub.url("/certificates/shop?tab=advanced")).await;
    assert!(browser.text(".facts").await.contains("hub default (70%)"));
    no_js_errors(&browser, "the edits").await;

    // History and the audit log.
    browser.goto(&hub.url("/certificates/web?tab=history")).await;
    let history = browser.text(".tab table").await;
    assert!(history.contains("issued"), "{history}");
    browser.screenshot(&shots.join("certificate-history.png")).await;
    browser.goto(&hub.url("/audit")).await;
    let audit = browser.text("table.audit").await;
    for action in [
        "user.create",
        "account.create",
        "cert.create",
        "cert.request",
        "cert.key-download",
        "cert.import",
        "cert.update",
        "deploy.add",
        "deploy.remove",
        "settings.update",
    ] {
        assert!(audit.contains(action), "the audit log lacks {action}:\n{audit}");
    }
    assert!(browser.text("#audit-verdict").await.starts_with("Intact"));
    browser.screenshot(&shots.join("audit.png")).await;

    // The list searches as one types.
    browser.goto(&hub.url("/certificates")).await;
    browser.fill("#q", "nothing-matches").await;
    browser.wait_for_text("#cert-table", "0 certificates match", Duration::from_secs(10)).await;
    browser.fill("#q", "www.browser").await;
    browser.wait_for_text("#cert-table", "1 certificate match", Duration::from_secs(10)).await;
    browser.screenshot(&shots.join("certificates.png")).await;

    browser.goto(&hub.url("/")).await;
    let counts = browser.text(".counts").await;
    assert!(counts.contains("3\nvalid") || counts.contains("3 valid"), "{counts}");
    browser.screenshot(&shots.join("dashboard.png")).await;
    no_js_errors(&browser, "dashboard").await;

    // A phone-sized screen: nothing overflows sideways.
    browser.resize(390, 844).await;
    for (page, file) in [
        ("/", "phone-dashboard.png"),
        ("/certificates", "phone-certificates.png"),
        ("/certificates/web", "phone-certificate.png"),
        ("/settings", "phone-settings.png"),
    ] {
        browser.goto(&hub.url(page)).await;
        browser.find("main h1").await;
        browser.screenshot(&shots.join(file)).await;
        assert!(fits_width(&browser).await, "{page} overflows a 390 px wide screen");
    }
    no_js_errors(&browser, "the phone-sized pages").await;

    // Revoke, after confirming: the state changes and the channel is told.
    browser.resize(1280, 900).await;
    browser.goto(&hub.url("/certificates/web")).await;
    browser.select(".toolbar select", "superseded").await;
    browser.click("button.danger").await;
    browser.accept_dialog().await;
    browser.wait_for_text("#action-result", "Revoked serial", Duration::from_secs(30)).await;
    browser.goto(&hub.url("/certificates/web?tab=history")).await;
    assert_eq!(browser.text("h1 .state").await, "revoked");
    assert!(browser.text(".tab table").await.contains("Superseded"));
    let mail = smtp.wait_for(3).await.remove(2);
    assert!(mail.contains("Subject: [certhub] web was revoked"), "{mail}");
    no_js_errors(&browser, "the revocation").await;

    // Signing out ends the session: the pages ask to sign in again.
    browser.goto(&hub.url("/")).await;
    browser.click(".who button").await;
    browser.find("#password").await;
    browser.goto(&hub.url("/settings")).await;
    browser.find("#password").await;
    assert!(browser.url().await.contains("/login?next=/settings"), "{}", browser.url().await);
    browser.fill("#username", "admin").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("h1", "Settings", Duration::from_secs(20)).await;
    drop(hub);
}
