//! The web UI's sessions, CSRF protection, roles and form validation, through the router on a
//! real store. (The pages themselves are driven in a real browser by the e2e tests.)

use axum::body::Body;
use axum::http::{Request, StatusCode};
use certhub_server::{AppState, router};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

const PASSWORD: &str = "a long enough password";

struct Hub {
    app: axum::Router,
    store: Option<certhub_store::Store>,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    location: String,
    cookie: String,
    body: String,
}

impl Hub {
    /// A hub set up through its setup page; the admin's session cookie, and the whole
    /// `Set-Cookie` header that carried it.
    async fn set_up(https: bool) -> (Hub, String, String) {
        Self::set_up_with(https, false).await
    }

    /// [`Hub::set_up`], with an engine when `engine`.
    async fn set_up_with(https: bool, engine: bool) -> (Hub, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = certhub_store::Store::open(dir.path()).await.unwrap();
        let store_handle = store.clone();
        let mut state = AppState::new(store.clone()).serving_https(https);
        if engine {
            let config =
                certhub_engine::Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
            state =
                state.with_engine(std::sync::Arc::new(certhub_engine::Engine::new(store, config)));
        }
        let token = state.setup_token_if_needed().await.unwrap().unwrap();
        let hub = Hub { app: router(state), store: Some(store_handle), _dir: dir };
        let rsp = hub
            .post(
                "/setup",
                None,
                &[
                    ("token", &token),
                    ("username", "admin"),
                    ("password", PASSWORD),
                    ("password2", PASSWORD),
                ],
            )
            .await;
        assert_eq!(rsp.status, StatusCode::SEE_OTHER, "{}", rsp.body);
        assert_eq!(rsp.location, "/settings");
        let cookie = rsp.cookie.split(';').next().unwrap().to_string();
        (hub, cookie, rsp.cookie)
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let rsp = self.app.clone().oneshot(req).await.unwrap();
        let header = |name: &str| {
            rsp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
        };
        let (location, cookie) = (header("location"), header("set-cookie"));
        let status = rsp.status();
        let body = rsp.into_body().collect().await.unwrap().to_bytes();
        Answer { status, location, cookie, body: String::from_utf8_lossy(&body).into_owned() }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut req = Request::builder().uri(path);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.replace('%', "%25")
                        .replace('&', "%26")
                        .replace('+', "%2B")
                        .replace('=', "%3D")
                        .replace(' ', "+")
                )
            })
            .collect();
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        self.send(req.body(Body::from(body.join("&"))).unwrap()).await
    }

    /// The CSRF token the page at `path` carries for `cookie`'s session.
    async fn csrf(&self, path: &str, cookie: &str) -> String {
        let page = self.get(path, Some(cookie)).await;
        let at = page.body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token");
        page.body[at + 19..].split('"').next().unwrap().to_string()
    }
}

#[tokio::test]
async fn nothing_is_open_before_setup_and_sessions_are_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let store = certhub_store::Store::open(dir.path()).await.unwrap();
    let state = AppState::new(store);
    state.setup_token_if_needed().await.unwrap();
    let hub = Hub { app: router(state), store: None, _dir: dir };
    let rsp = hub.get("/certificates?q=x", None).await;
    assert_eq!(rsp.status, StatusCode::SEE_OTHER);
    assert_eq!(rsp.location, "/login?next=/certificates%3Fq%3Dx");
    assert_eq!(hub.get("/login", None).await.location, "/setup");
    // htmx gets a header it follows with a full page load.
    let req = Request::builder().uri("/certificates").header("hx-request", "true");
    let rsp = hub.send(req.body(Body::empty()).unwrap()).await;
    assert_eq!(rsp.status, StatusCode::UNAUTHORIZED);

    let (hub, cookie, plain) = Hub::set_up(false).await;
    assert!(!plain.contains("Secure"), "a plain-HTTP hub's cookie must reach it: {plain}");
    let rsp = hub.get("/settings", Some(&cookie)).await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert!(rsp.body.contains("Settings"));
    // The cookie's attributes over HTTPS.
    let (https, _, set_cookie) = Hub::set_up(true).await;
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age=43200"] {
        assert!(set_cookie.contains(attr), "{attr} missing from {set_cookie}");
    }
    // Setup is done: the page is gone, the token spent.
    assert_eq!(https.get("/setup", None).await.location, "/login");
}

#[tokio::test]
async fn forms_need_the_session_csrf_token() {
    let (hub, cookie, _) = Hub::set_up(false).await;
    let user = [("username", "ops"), ("password", PASSWORD), ("role", "operator")];
    let rsp = hub.post("/settings/users", Some(&cookie), &user).await;
    assert_eq!(rsp.status, StatusCode::FORBIDDEN, "no token");
    let mut forged = user.to_vec();
    forged.push(("csrf", "0123456789abcdef0123456789abcdef"));
    assert_eq!(
        hub.post("/settings/users", Some(&cookie), &forged).await.status,
        StatusCode::FORBIDDEN
    );

    let csrf = hub.csrf("/settings", &cookie).await;
    let mut good = user.to_vec();
    good.push(("csrf", &csrf));
    let rsp = hub.post("/settings/users", Some(&cookie), &good).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.body);
    assert!(rsp.body.contains("User ops added as operator."));
    // The header htmx sends works as well as the field.
    let req = Request::builder()
        .method("POST")
        .uri("/settings/tokens")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("label=ci&scope=cert%3Aread&expires_in_days=30"))
        .unwrap();
    let rsp = hub.send(req).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.body);
    assert!(rsp.body.contains("shown once"), "the new token is shown");
}

#[tokio::test]
async fn validation_errors_are_shown_next_to_their_field() {
    let (hub, cookie, _) = Hub::set_up(false).await;
    let csrf = hub.csrf("/settings", &cookie).await;
    let rsp = hub
        .post(
            "/settings/users",
            Some(&cookie),
            &[("username", "ops"), ("password", "short"), ("role", "operator"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST);
    let field = rsp.body.find("id=\"user-password\"").expect("the password field");
    let error = rsp.body[field..].find("class=\"err\"").expect("an error after it") + field;
    let next_field = rsp.body[field + 1..].find("<label").unwrap() + field + 1;
    assert!(error < next_field, "the error sits right after the password field");
    assert!(rsp.body[error..].contains("at least 12 characters"));
    // The name typed is kept.
    assert!(rsp.body.contains("value=\"ops\""));
}

#[tokio::test]
async fn renewal_settings_are_saved_from_the_settings_page() {
    let (hub, cookie, _) = Hub::set_up(false).await;
    let csrf = hub.csrf("/settings", &cookie).await;
    let form = |policy: &'static str, workers: &'static str| {
        [
            ("renewal_policy", policy),
            ("check_interval_seconds", "300"),
            ("renewal_workers", workers),
            ("expiry_warning_days", "30"),
        ]
    };
    let mut bad = form("often", "two").to_vec();
    bad.push(("csrf", &csrf));
    let rsp = hub.post("/settings/renewal", Some(&cookie), &bad).await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST);
    for field in ["renewal_policy", "renewal_workers"] {
        let at = rsp.body.find(&format!("id=\"{field}\"")).expect("the field");
        let rest = &rsp.body[at..];
        let error = rest.find("class=\"err\"").expect("an error after it");
        assert!(error < rest[1..].find("<label").unwrap(), "{field}'s error sits after it");
    }
    assert!(rsp.body.contains("value=\"often\""), "what was typed is kept");
    let mut good = form("30d", "8").to_vec();
    good.push(("csrf", &csrf));
    let rsp = hub.post("/settings/renewal", Some(&cookie), &good).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.body);
    assert!(rsp.body.contains("Saved: renewal policy 30d, 8 renewal workers."), "{}", rsp.body);
    assert!(hub.get("/settings", Some(&cookie)).await.body.contains("value=\"30d\""));
}

#[tokio::test]
async fn roles_hold_in_the_pages_and_signing_out_ends_the_session() {
    let (hub, admin, _) = Hub::set_up(false).await;
    let csrf = hub.csrf("/settings", &admin).await;
    let viewer = [("username", "eve"), ("password", PASSWORD), ("role", "viewer"), ("csrf", &csrf)];
    assert_eq!(hub.post("/settings/users", Some(&admin), &viewer).await.status, StatusCode::OK);
    let rsp = hub.sign_in("eve", "wrong password!", "/").await;
    assert_eq!(rsp.status, StatusCode::UNAUTHORIZED);
    assert!(rsp.body.contains("wrong user name or password"));
    let rsp = hub.sign_in("eve", PASSWORD, "//evil.example").await;
    assert_eq!(rsp.status, StatusCode::SEE_OTHER);
    assert_eq!(rsp.location, "/", "only local paths are followed");
    let eve = rsp.cookie.split(';').next().unwrap().to_string();
    assert_eq!(hub.get("/audit", Some(&eve)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(hub.get("/certificates/new", Some(&eve)).await.status, StatusCode::FORBIDDEN);
    let page = hub.get("/certificates", Some(&eve)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("New certificate"), "a viewer is not offered what it may not do");

    let eve_csrf = hub.csrf("/settings", &eve).await;
    let rsp = hub.post("/logout", Some(&eve), &[("csrf", &eve_csrf)]).await;
    assert_eq!(rsp.status, StatusCode::SEE_OTHER);
    assert!(rsp.cookie.contains("Max-Age=0"));
    // The old cookie is worth nothing now.
    let rsp = hub.get("/certificates", Some(&eve)).await;
    assert_eq!(rsp.status, StatusCode::SEE_OTHER);
    assert!(rsp.location.starts_with("/login"));
    // The admin's session is unaffected.
    assert_eq!(hub.get("/audit", Some(&admin)).await.status, StatusCode::OK);
}

impl Hub {
    /// Signs in through the login page as a browser would: its CSRF cookie and field sent
    /// back. The answer, and the session cookie when it succeeded.
    async fn sign_in(&self, user: &str, password: &str, next: &str) -> Answer {
        let page = self.get("/login", None).await;
        let login = page.cookie.split(';').next().unwrap().to_string();
        assert!(login.starts_with("certhub_login="), "{}", page.cookie);
        let at = page.body.find("name=\"csrf\" value=\"").expect("the form's CSRF token");
        let csrf = page.body[at + 19..].split('"').next().unwrap().to_string();
        let form = [("username", user), ("password", password), ("next", next), ("csrf", &csrf)];
        self.post("/login", Some(&login), &form).await
    }
}

#[tokio::test]
async fn an_api_token_is_never_a_session_whatever_its_label() {
    let (hub, admin, _) = Hub::set_up(false).await;
    // An admin's token narrowed to reading, labelled like a session.
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/tokens")
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"{{"username": "admin", "password": "{PASSWORD}", "label": "web session", "scopes": ["cert:read"]}}"#
        )))
        .unwrap();
    let rsp = hub.send(req).await;
    assert_eq!(rsp.status, StatusCode::CREATED, "{}", rsp.body);
    let token: serde_json::Value = serde_json::from_str(&rsp.body).unwrap();
    let narrow = format!("certhub_session={}", token["token"].as_str().unwrap());
    // Sent as the session cookie, it opens no page and makes no user.
    let rsp = hub.get("/settings", Some(&narrow)).await;
    assert_eq!(rsp.status, StatusCode::SEE_OTHER, "an API token is not a session");
    assert!(rsp.location.starts_with("/login"));
    let csrf = hub.csrf("/settings", &admin).await;
    let user = [("username", "mallory"), ("password", PASSWORD), ("role", "admin")];
    let mut forged = user.to_vec();
    forged.push(("csrf", &csrf));
    assert_eq!(
        hub.post("/settings/users", Some(&narrow), &forged).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(!hub.get("/settings", Some(&admin)).await.body.contains("mallory"));
    // Nor is a session an API token: it lives in its cookie, with its idle limit and CSRF.
    let session = admin.strip_prefix("certhub_session=").unwrap();
    let req = Request::builder()
        .uri("/api/v1/certificates")
        .header("authorization", format!("Bearer {session}"))
        .body(Body::empty())
        .unwrap();
    let rsp = hub.send(req).await;
    assert_eq!(rsp.status, StatusCode::UNAUTHORIZED, "{}", rsp.body);
    assert!(rsp.body.contains("web session"), "{}", rsp.body);
}

#[tokio::test]
async fn sign_in_goes_only_to_paths_on_this_hub_and_needs_its_form() {
    let (hub, _, _) = Hub::set_up(false).await;
    for next in [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "/%09/evil.example",
        "https://evil.example",
        "/\n/evil.example",
    ] {
        let rsp = hub.sign_in("admin", PASSWORD, next).await;
        assert_eq!(rsp.status, StatusCode::SEE_OTHER, "{next:?}: {}", rsp.body);
        // What a browser makes of it: tabs and newlines dropped, backslashes as slashes.
        let seen: String = rsp.location.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let seen = seen.replace('\\', "/");
        assert!(seen.starts_with('/') && !seen.starts_with("//"), "{next:?} led to {seen:?}");
    }
    // The login page refuses the same, before a form is even sent.
    let page = hub.get("/login?next=/%09/evil.example", None).await;
    assert!(page.body.contains("name=\"next\" value=\"/\""), "{}", page.body);
    // A local path is kept.
    assert_eq!(
        hub.sign_in("admin", PASSWORD, "/certificates?q=web").await.location,
        "/certificates?q=web"
    );
    // A form posted without the login page's cookie (from another site) signs no one in.
    let rsp = hub
        .post("/login", None, &[("username", "admin"), ("password", PASSWORD), ("csrf", "x")])
        .await;
    assert_eq!(rsp.status, StatusCode::FORBIDDEN);
    assert!(rsp.body.contains("stale or came from another site"), "{}", rsp.body);
    assert!(!rsp.cookie.starts_with("certhub_session="), "no session: {}", rsp.cookie);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let (hub, cookie, _) = Hub::set_up(false).await;
    let (https, https_cookie, _) = Hub::set_up(true).await;
    for (hub, cookie, hsts) in [(&hub, &cookie, false), (&https, &https_cookie, true)] {
        for path in ["/", "/login", "/api/v1/health", "/assets/app.css", "/no-such-page"] {
            let rsp = hub.app.clone().oneshot(
                Request::builder()
                    .uri(path)
                    .header("cookie", cookie.as_str())
                    .body(Body::empty())
                    .unwrap(),
            );
            let rsp = rsp.await.unwrap();
            let h = |name: &str| {
                rsp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            assert_eq!(h("x-frame-options"), "DENY", "{path}");
            assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
            assert_eq!(h("referrer-policy"), "same-origin", "{path}");
            let csp = h("content-security-policy");
            for rule in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"] {
                assert!(csp.contains(rule), "{path}: {csp}");
            }
            assert!(!csp.contains("unsafe"), "{path}: {csp}");
            assert_eq!(h("strict-transport-security").is_empty(), !hsts, "{path}");
        }
    }
    // The pages themselves hold nothing that policy forbids: no inline script or style.
    for path in ["/", "/certificates", "/settings", "/audit"] {
        let body = hub.get(path, Some(&cookie)).await.body;
        assert!(!body.contains("style=\""), "{path} has an inline style");
        assert!(!body.contains("javascript:"), "{path} has a javascript: link");
        assert!(!body.contains("<script>"), "{path} has an inline script");
    }
}

#[tokio::test]
async fn tokens_live_ten_years_at_most() {
    let (hub, cookie, _) = Hub::set_up(false).await;
    let csrf = hub.csrf("/settings", &cookie).await;
    let form =
        |days: &'static str| [("label", "ci"), ("scope", "cert:read"), ("expires_in_days", days)];
    for days in ["4294967295", "3651", "0", "soon"] {
        let mut f = form(days).to_vec();
        f.push(("csrf", &csrf));
        let rsp = hub.post("/settings/tokens", Some(&cookie), &f).await;
        assert_eq!(rsp.status, StatusCode::BAD_REQUEST, "{days}");
        assert!(rsp.body.contains("from 1 to 3650"), "{days}: {}", rsp.body);
    }
    let mut f = form("3650").to_vec();
    f.push(("csrf", &csrf));
    assert_eq!(hub.post("/settings/tokens", Some(&cookie), &f).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_agents_page_makes_a_join_token_shown_once() {
    let (hub, cookie, _) = Hub::set_up_with(false, true).await;
    let page = hub.get("/agents", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("No agent has joined yet"));
    assert!(page.body.contains("start it with <code>--agent-listen"), "{}", page.body);
    let csrf = hub.csrf("/agents", &cookie).await;
    // A label that is not one is refused next to its field.
    let bad = [("csrf", csrf.as_str()), ("labels", "Role=web"), ("expires_in_hours", "2")];
    let rsp = hub.post("/agents/tokens", Some(&cookie), &bad).await;
    assert!(rsp.body.contains("lower-case"), "{}", rsp.body);
    assert!(!rsp.body.contains("certhub-join_"));
    let good = [("csrf", csrf.as_str()), ("labels", "role=web site=fra"), ("expires_in_hours", "")];
    let rsp = hub.post("/agents/tokens", Some(&cookie), &good).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.body);
    assert!(rsp.body.contains("certhub agent join HUB_URL --token certhub-join_"), "{}", rsp.body);
    // Shown once: the page itself never shows it again.
    assert!(!hub.get("/agents", Some(&cookie)).await.body.contains("certhub-join_"));
    // The nav links to it.
    assert!(hub.get("/settings", Some(&cookie)).await.body.contains("href=\"/agents\""));
}

#[tokio::test]
async fn a_certificates_deployment_tab_sets_where_it_is_deployed() {
    let (hub, cookie, _) = Hub::set_up_with(false, true).await;
    let store = hub.store.clone().unwrap();
    // A certificate imported elsewhere (no CA needed), and no agent yet.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["site.test".into()]).unwrap().self_signed(&key).unwrap();
    let csrf = hub.csrf("/certificates/import", &cookie).await;
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "site"),
        ("cert_pem", &cert.pem()),
        ("key_pem", &key.serialize_pem()),
    ];
    let rsp = hub.post("/certificates/import", Some(&cookie), &form).await;
    assert!(rsp.status.is_redirection() || rsp.status.is_success(), "{}", rsp.body);
    assert!(store.cert("site").await.unwrap().is_some(), "{}", rsp.body);
    let tab = hub.get("/certificates/site?tab=deployment", Some(&cookie)).await;
    assert!(tab.body.contains("Deployed by the hub"), "{}", tab.body);
    let csrf = hub.csrf("/certificates/site?tab=deployment", &cookie).await;
    // A target naming no agent is refused next to the field; a label is taken.
    let bad = [("csrf", csrf.as_str()), ("targets", "agent:nobody")];
    let rsp = hub.post("/certificates/site/targets", Some(&cookie), &bad).await;
    assert!(rsp.body.contains("agent:nobody names no agent"), "{}", rsp.body);
    let good = [("csrf", csrf.as_str()), ("targets", "label:role=web")];
    let rsp = hub.post("/certificates/site/targets", Some(&cookie), &good).await;
    let tab = hub.get("/certificates/site?tab=deployment", Some(&cookie)).await;
    assert!(tab.body.contains("Deployed on label:role=web"), "{}\n{}", rsp.body, tab.body);
    assert_eq!(store.cert_targets("site").await.unwrap(), ["label:role=web"]);
}

#[tokio::test]
async fn the_credentials_page_keeps_a_secret_without_showing_it() {
    let (hub, cookie, _) = Hub::set_up_with(false, true).await;
    let page = hub.get("/credentials", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("No credential is kept yet"), "{}", page.body);
    assert!(page.body.contains("Add a tsig credential") && page.body.contains("type=\"password\""));
    // Every DNS provider is offered, with its SPEC and its credential's fields.
    for p in certhub_core::dns_provider::PROVIDERS {
        assert!(page.body.contains(&format!("dns-01:provider={}</code>", p.name)), "{}", p.name);
    }
    assert!(
        page.body.contains("id=\"cloudflare-api-token\" name=\"f-api-token\" type=\"password\"")
    );
    // A new certificate may name a provider's API as its challenge.
    let new = hub.get("/certificates/new", Some(&cookie)).await.body;
    assert!(new.contains("value=\"dns-01:provider\"") && new.contains("cloudflare,credential=cf"));
    let csrf = hub.csrf("/credentials", &cookie).await;
    // A required field left empty is said next to the form, and nothing is kept.
    let missing =
        [("csrf", csrf.as_str()), ("kind", "tsig"), ("name", "dns"), ("f-key-name", "acme")];
    let rsp = hub.post("/credentials", Some(&cookie), &missing).await;
    assert!(rsp.body.contains("needs key-secret"), "{}", rsp.body);
    let good = [
        ("csrf", csrf.as_str()),
        ("kind", "tsig"),
        ("name", "dns"),
        ("f-key-name", "acme"),
        ("f-key-secret", "dG9wLXNlY3JldA=="),
        ("f-algorithm", ""),
    ];
    let rsp = hub.post("/credentials", Some(&cookie), &good).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.body);
    assert!(rsp.body.contains("Credential dns (tsig) kept"), "{}", rsp.body);
    let page = hub.get("/credentials", Some(&cookie)).await;
    assert!(page.body.contains("key-secret: (secret)") && page.body.contains("key-name: acme"));
    assert!(!page.body.contains("dG9wLXNlY3JldA=="), "{}", page.body);
    let rotate = [
        ("csrf", csrf.as_str()),
        ("kind", "tsig"),
        ("f-key-name", "acme2"),
        ("f-key-secret", "bmV3LXNlY3JldA=="),
    ];
    let rsp = hub.post("/credentials/dns/rotate", Some(&cookie), &rotate).await;
    assert!(rsp.body.contains("rotated"), "{}", rsp.body);
    let rsp = hub.post("/credentials/dns/remove", Some(&cookie), &[("csrf", csrf.as_str())]).await;
    assert!(rsp.body.contains("Credential dns removed"), "{}", rsp.body);
    // A provider's credential, its required field missing: said in its own form, kept open.
    let cf = [("csrf", csrf.as_str()), ("kind", "cloudflare"), ("name", "cf")];
    let rsp = hub.post("/credentials", Some(&cookie), &cf).await;
    assert!(rsp.body.contains("<details id=\"provider-cloudflare\" open>"), "{}", rsp.body);
    assert!(rsp.body.contains("a cloudflare credential needs api-token"), "{}", rsp.body);
    // Admins find it in the nav.
    assert!(hub.get("/settings", Some(&cookie)).await.body.contains("href=\"/credentials\""));
}

#[tokio::test]
async fn admins_manage_users_and_everyone_changes_their_password_on_the_settings_page() {
    let (hub, cookie, _) = Hub::set_up_with(false, true).await;
    let csrf = hub.csrf("/settings", &cookie).await;
    let add = [
        ("csrf", csrf.as_str()),
        ("username", "otto"),
        ("password", "operator password"),
        ("role", "operator"),
    ];
    assert!(
        hub.post("/settings/users", Some(&cookie), &add).await.body.contains("User otto added")
    );
    let page = hub.get("/settings", Some(&cookie)).await.body;
    assert!(page.contains("action=\"/settings/users/otto\""), "{page}");
    assert!(change(&hub, &cookie, &csrf, "disable").await.contains("User otto disabled"));
    assert!(hub.get("/settings", Some(&cookie)).await.body.contains("disabled 20"));
    assert!(change(&hub, &cookie, &csrf, "enable").await.contains("User otto enabled"));
    assert!(change(&hub, &cookie, &csrf, "role").await.contains("User otto given the new role"));
    assert!(change(&hub, &cookie, &csrf, "remove").await.contains("User otto removed"));
    assert!(
        change(&hub, &cookie, &csrf, "remove").await.contains("was not found"),
        "said at the top of the page"
    );

    // One's own password: a wrong current one is said next to its field.
    let wrong = [
        ("csrf", csrf.as_str()),
        ("current_password", "not the one"),
        ("new_password", "a brand new password"),
    ];
    let rsp = hub.post("/settings/password", Some(&cookie), &wrong).await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST);
    assert!(rsp.body.contains("that is not your current password"), "{}", rsp.body);
    let right = [
        ("csrf", csrf.as_str()),
        ("current_password", PASSWORD),
        ("new_password", "a brand new password"),
    ];
    let rsp = hub.post("/settings/password", Some(&cookie), &right).await;
    assert!(rsp.body.contains("Your password is changed."), "{}", rsp.body);
}

/// Posts `do=what` (with role=admin) for user otto on the settings page; the page.
async fn change(hub: &Hub, cookie: &str, csrf: &str, what: &str) -> String {
    let form = [("csrf", csrf), ("do", what), ("role", "admin")];
    hub.post("/settings/users/otto", Some(cookie), &form).await.body
}
