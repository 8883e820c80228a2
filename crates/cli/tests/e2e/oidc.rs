//! Sign-in through a real OpenID provider (`oidc-provider` from npm, run by Node.js), in a
//! real headless Chromium: the authorization code flow with PKCE, roles from the `groups`
//! claim at each sign-in, the local admin kept for recovery, and what is refused.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use certhub_testkit::browser::Browser;
use certhub_testkit::{free_port, require_tool};
use serde_json::{Value, json};

use crate::support::{ADMIN, Env, Hub, call, hostile};

const INSTALL: &str = "scripts/test installs it (npm ci of crates/cli/tests/e2e/oidc into \
                       ~/.cache/certhub/oidc-provider)";

/// The hub's client secret at the provider.
const SECRET: &str = "a-client-secret-of-32-characters";

/// The provider's node_modules: CERTHUB_OIDC_MODULES, or where scripts/test puts them.
fn modules() -> PathBuf {
    let dir = std::env::var_os("CERTHUB_OIDC_MODULES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/certhub/oidc-provider/node_modules")
    });
    assert!(
        dir.join("oidc-provider/package.json").exists(),
        "the OpenID provider's package is not at {}: {INSTALL}",
        dir.display()
    );
    dir
}

/// `provider.mjs` running under Node.js with its users in a file it reads at each sign-in.
struct Provider {
    child: tokio::process::Child,
    issuer: String,
    dir: tempfile::TempDir,
}

impl Provider {
    async fn start(port: u16, redirect_uri: &str, users: &Value) -> Provider {
        use tokio::io::AsyncBufReadExt as _;
        let node = require_tool("node", "apt-get install nodejs");
        let dir = tempfile::TempDir::new().unwrap();
        // The script beside its modules, so that Node.js finds them.
        let script = dir.path().join("provider.mjs");
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/oidc/provider.mjs"), &script)
            .unwrap();
        std::os::unix::fs::symlink(modules(), dir.path().join("node_modules")).unwrap();
        let issuer = format!("http://127.0.0.1:{port}");
        write_users(dir.path(), users);
        let mut child = tokio::process::Command::new(node)
            .arg(&script)
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_ISSUER", &issuer)
            .env("OIDC_CLIENT_ID", "certhub")
            .env("OIDC_CLIENT_SECRET", SECRET)
            .env("OIDC_REDIRECT_URI", redirect_uri)
            .env("OIDC_USERS_FILE", dir.path().join("users.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the OpenID provider starts within 30 s")
            .unwrap();
        assert_eq!(first.as_deref(), Some(format!("listening {issuer}").as_str()));
        // The rest is drained, or the provider would die writing to a closed pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("provider: {line}");
            }
        });
        Provider { child, issuer, dir }
    }

    /// Replaces the users and their claims.
    fn set_users(&self, users: &Value) {
        write_users(self.dir.path(), users);
    }
}

fn write_users(dir: &std::path::Path, users: &Value) {
    std::fs::write(dir.join("users.json"), users.to_string()).unwrap();
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn users(bob_groups: &[&str]) -> Value {
    json!({
        "alice": {"preferred_username": "alice", "email": "alice@example.com",
                  "groups": ["staff", "certhub-admins"]},
        "bob": {"preferred_username": "bob", "groups": bob_groups},
        "carol": {"preferred_username": "carol", "groups": ["sales"]},
        "eve": {"preferred_username": "admin", "groups": ["certhub-admins"]},
    })
}

/// Signs in at the provider as `login` in a fresh browser, starting from the hub's `page`;
/// the browser, on whichever page the hub then shows.
async fn sign_in(hub: &Hub, page: &str, login: &str) -> Browser {
    let browser = Browser::start(1100, 800).await;
    browser.goto(&hub.url(page)).await;
    let button = browser.wait_for_text("#oidc", "Sign in with", Duration::from_secs(10)).await;
    assert_eq!(button.trim(), "Sign in with Example ID");
    browser.click("#oidc").await;
    browser.find("#login").await;
    browser.fill("#login", login).await;
    browser.fill("#password", "anything: the test provider ignores it").await;
    browser.click("#submit").await;
    browser
}

/// Waits until the hub shows a page other than the sign-in page; its `h1`.
async fn signed_in(browser: &Browser) -> String {
    certhub_testkit::wait_until(
        "the hub's page after sign-in",
        Duration::from_secs(20),
        || async {
            let url = browser.url().await;
            (!url.contains("/login") && browser.exists("h1").await).then_some(())
        },
    )
    .await;
    browser.text("h1").await
}

async fn user(hub: &Hub, token: &str, name: &str) -> Value {
    let all = call(hub, token, "GET", "/api/v1/users", None).await;
    all["items"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["username"] == name).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn people_sign_in_through_an_openid_provider_with_roles_from_its_groups_claim() {
    let env = Env::start(hostile()).await;
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let secret = env.data_dir().join("oidc-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret = secret.display().to_string();
    // The provider is not up yet: the hub says so, and serves anyway.
    let hub = env
        .serve(
            &[
                "--oidc-issuer",
                &issuer,
                "--oidc-client-id",
                "certhub",
                "--oidc-client-secret-file",
                &secret,
                "--oidc-scope",
                "groups",
                "--oidc-role",
                "admin=certhub-admins",
                "--oidc-role",
                "operator=certhub-ops",
                "--oidc-role",
                "viewer=staff",
                "--oidc-name",
                "Example ID",
            ],
            true,
        )
        .await;
    assert!(hub.said.contains(&format!("OpenID provider at {issuer}")), "{}", hub.said);
    certhub_testkit::wait_until(
        "a warning that the provider is not there",
        Duration::from_secs(10),
        || async { hub.logged().contains("OpenID discovery failed").then_some(()) },
    )
    .await;
    let admin = hub.admin_token().await;
    let provider =
        Provider::start(port, &hub.url("/login/oidc/callback"), &users(&["staff"])).await;

    // Alice, in the provider's admin group, lands where she was going, as an admin.
    let browser = sign_in(&hub, "/settings", "alice").await;
    assert_eq!(signed_in(&browser).await, "Settings");
    assert!(browser.url().await.ends_with("/settings"), "{}", browser.url().await);
    assert!(browser.exists("#users").await, "an admin sees the users");
    let alice = user(&hub, &admin, "alice").await;
    assert_eq!(alice["role"], "admin", "{alice}");
    assert_eq!(alice["identity_provider"], provider.issuer.as_str(), "{alice}");
    // Her session is a real one: the API's own pages answer it.
    browser.goto(&hub.url("/certificates")).await;
    assert_eq!(signed_in(&browser).await, "Certificates");
    drop(browser);

    // Bob is staff: a viewer. Once the provider puts him in certhub-ops, his next sign-in
    // makes him an operator, audited.
    let browser = sign_in(&hub, "/", "bob").await;
    signed_in(&browser).await;
    assert_eq!(user(&hub, &admin, "bob").await["role"], "viewer");
    drop(browser);
    provider.set_users(&users(&["certhub-ops"]));
    let bob = sign_in(&hub, "/", "bob").await;
    signed_in(&bob).await;
    assert_eq!(user(&hub, &admin, "bob").await["role"], "operator");
    let audit = call(&hub, &admin, "GET", "/api/v1/audit?limit=1000", None).await.to_string();
    assert!(
        audit.contains("user.role") && audit.contains("operator (from the groups claim)"),
        "{audit}"
    );
    assert!(audit.contains("bob (oidc)"), "{audit}");
    // Once the provider gives him no role, his next sign-in is refused, and the session he
    // still had ends with it.
    provider.set_users(&users(&["sales"]));
    let browser = sign_in(&hub, "/", "bob").await;
    browser.wait_for_text("#oidc-error", "no role", Duration::from_secs(20)).await;
    drop(browser);
    bob.goto(&hub.url("/certificates")).await;
    certhub_testkit::wait_until("bob's session to end", Duration::from_secs(10), || async {
        bob.url().await.contains("/login").then_some(())
    })
    .await;
    drop(bob);
    let audit = call(&hub, &admin, "GET", "/api/v1/audit?limit=1000", None).await.to_string();
    assert!(audit.contains("user.tokens-revoke"), "{audit}");

    // Carol's groups give no role: refused, saying which claim held what.
    let browser = sign_in(&hub, "/", "carol").await;
    let said = browser.wait_for_text("#oidc-error", "no role", Duration::from_secs(20)).await;
    assert!(said.contains("groups sales") && said.contains("--oidc-role"), "{said}");
    assert!(user(&hub, &admin, "carol").await.is_null(), "carol was not made a user");
    drop(browser);

    // A provider that names someone like a local user does not take that user over.
    let browser = sign_in(&hub, "/", "eve").await;
    let said =
        browser.wait_for_text("#oidc-error", "already exists", Duration::from_secs(20)).await;
    assert!(said.contains("a user named admin"), "{said}");
    drop(browser);

    // A user from the provider has no password here: refused as any wrong password is, with a
    // word on how such users sign in.
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let rsp = http
        .post(hub.url("/api/v1/tokens"))
        .json(&json!({"username": "alice", "password": "any password at all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 401);
    let body = rsp.text().await.unwrap();
    assert!(
        body.contains("wrong user name or password")
            && body.contains("people who sign in with Example ID use its button"),
        "{body}"
    );

    // Disabled by an admin: the provider's word is not enough.
    call(&hub, &admin, "PATCH", "/api/v1/users/alice", Some(json!({"disabled": true}))).await;
    let browser = sign_in(&hub, "/", "alice").await;
    browser.wait_for_text("#oidc-error", "disabled", Duration::from_secs(20)).await;
    drop(browser);

    // Someone who gives up at the provider is back at the sign-in page, told so.
    let browser = Browser::start(1100, 800).await;
    browser.goto(&hub.url("/login")).await;
    browser.click("#oidc").await;
    browser.find("#cancel").await;
    browser.click("#cancel").await;
    let said =
        browser.wait_for_text("#oidc-error", "did not sign you in", Duration::from_secs(20)).await;
    assert!(said.contains("aborted"), "{said}");
    drop(browser);

    // Answers that are not this browser's own are refused: no pending sign-in, or another
    // state than the one it was sent off with.
    let rsp = http.get(hub.url("/login/oidc/callback?code=x&state=y")).send().await.unwrap();
    assert_eq!(rsp.status(), 401);
    assert!(rsp.text().await.unwrap().contains("began in another browser"));
    let begun = http.get(hub.url("/login/oidc?next=/audit")).send().await.unwrap();
    assert_eq!(begun.status(), 303);
    let to = begun.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with(&format!("{issuer}/auth?")), "{to}");
    for part in ["code_challenge_method=S256", "code_challenge=", "nonce=", "scope=openid"] {
        assert!(to.contains(part), "the authorization request lacks {part}: {to}");
    }
    let cookie = begun.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let rsp = http
        .get(hub.url("/login/oidc/callback?code=x&state=forged"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 403);
    assert!(rsp.text().await.unwrap().contains("not the one this browser asked for"));

    // The local admin still signs in with a password (recovery), and the audit log holds.
    hub.sign_in(ADMIN, None).await;
    let created = call(&hub, &admin, "GET", "/api/v1/audit?limit=1000", None).await.to_string();
    assert!(
        created.contains("user.create") && created.contains("admin (from the groups claim)"),
        "{created}"
    );
    env.ok(&["audit", "verify"]).await;
    let listed = env.ok(&["user", "list"]).await;
    assert!(listed.contains(&issuer) && listed.contains("password"), "{listed}");
}
