//! The settings page and its forms: `GET /settings` and `POST /settings/…`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use certhub_store::TokenKind;
use serde_json::Value;

use super::session::{Posted, Session};
use super::{
    Errors, FormData, Fragment, PageInfo, problem_fragment, problem_page, render, render_status,
};
use crate::auth::Need;
use crate::ops;
use crate::problem::Problem;
use crate::state::AppState;

// ----- settings -----

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    page: PageInfo,
    admin: bool,
    accounts: Vec<AccountRow>,
    users: Vec<UserRow>,
    /// The signed-in user.
    me: String,
    tokens: Vec<TokenRow>,
    settings: certhub_engine::Settings,
    channels: Vec<ChannelRow>,
    /// A token just made, shown once.
    new_token: Option<String>,
    values: FormData,
    errors: Errors,
    /// Which form the errors belong to.
    form: &'static str,
}

pub(crate) struct AccountRow {
    pub name: String,
    pub directory: String,
    pub email: String,
    pub status: String,
}

pub(crate) struct ChannelRow {
    pub name: String,
    pub kind: String,
    pub target: String,
    pub events: String,
}

pub(crate) struct TokenRow {
    pub id: String,
    pub user: String,
    pub label: String,
    pub scopes: String,
    pub expires: String,
    pub last_used: String,
}

/// Where the CA account form's shortcuts point.
pub(crate) const DIRECTORIES: &[(&str, &str)] = &[
    ("letsencrypt", "Let's Encrypt"),
    ("letsencrypt-staging", "Let's Encrypt (staging)"),
    ("custom", "Another ACME CA (directory URL below)"),
];

pub(super) async fn settings(State(state): State<AppState>, s: Session) -> Response {
    let values = FormData(vec![
        ("directory".into(), "letsencrypt".into()),
        ("role".into(), "viewer".into()),
    ]);
    settings_page(&state, &s, None, values, Errors::default(), "", None).await
}

async fn settings_page(
    state: &AppState,
    s: &Session,
    new_token: Option<String>,
    values: FormData,
    errors: Errors,
    form: &'static str,
    flash: Option<String>,
) -> Response {
    let build = async {
        s.caller.require(Need::Read)?;
        let admin = s.caller.may(Need::Admin);
        let accounts = ops::accounts(state, &s.caller)
            .await?
            .into_iter()
            .map(|a| AccountRow {
                name: a.name,
                directory: a.directory,
                email: a.email.unwrap_or_default(),
                status: a.status,
            })
            .collect();
        let users = if admin {
            ops::users(state, &s.caller)
                .await?
                .into_iter()
                .map(|u| UserRow {
                    name: u.username,
                    role: u.role,
                    disabled: u.disabled_at,
                    provider: u.identity_provider,
                })
                .collect()
        } else {
            Vec::new()
        };
        let tokens = ops::tokens(state, &s.caller)
            .await?
            .into_iter()
            .filter(|t| t.kind != certhub_store::TokenKind::Session.as_str())
            .map(|t| TokenRow {
                id: t.id,
                user: t.user,
                label: t.label,
                scopes: t.scopes.join(" "),
                expires: t.expires_at.unwrap_or_else(|| "never".into()),
                last_used: t.last_used_at.unwrap_or_else(|| "never".into()),
            })
            .collect();
        let channels = if admin {
            ops::channels(state, &s.caller)
                .await?
                .into_iter()
                .map(|c| ChannelRow {
                    target: c.target,
                    events: c.events.join(" "),
                    name: c.name,
                    kind: c.kind,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok::<_, Problem>(SettingsPage {
            page: PageInfo::new("Settings", s, "settings").flash(flash),
            admin,
            accounts,
            users,
            me: s.caller.user.clone(),
            tokens,
            settings: state.settings.get(),
            channels,
            new_token,
            values,
            errors,
            form,
        })
    };
    match build.await {
        Ok(page) => render_status(
            if form.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST },
            &page,
        ),
        Err(p) => problem_page(p, s),
    }
}

/// A user as the settings page lists them.
struct UserRow {
    name: String,
    role: String,
    /// When they were disabled (RFC 3339), if they are.
    disabled: Option<String>,
    /// The OpenID provider they sign in through, if not with a password.
    provider: Option<String>,
}

/// The settings page after a change, with its message.
async fn settings_done(state: &AppState, s: &Session, flash: Option<String>) -> Response {
    settings_page(state, s, None, FormData::default(), Errors::default(), "", flash).await
}

pub(super) async fn add_account(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let mut errors = Errors::default();
    let directory = match form.value("directory") {
        "custom" => form.text("directory_url").unwrap_or_else(|| {
            errors.add("directory_url", "give the CA's ACME directory URL");
            String::new()
        }),
        d => d.to_string(),
    };
    let name = form.required("name", &mut errors, "name the account, e.g. le");
    if !form.checked("agree_tos") {
        errors.add("agree_tos", "the CA requires agreeing to its terms of service");
    }
    if !errors.is_empty() {
        return settings_page(&state, &s, None, form, errors, "account", None).await;
    }
    let req = certhub_engine::NewAccount {
        name: name.clone(),
        directory,
        email: form.text("email"),
        agree_tos: true,
        eab_kid: form.text("eab_kid"),
        eab_hmac_key: form.text("eab_hmac_key"),
        eab_algorithm: None,
        key_type: None,
        ca_bundle_pem: form.text("ca_bundle_pem"),
    };
    match ops::add_account(&state, &s.caller, &req).await {
        Ok(_) => {
            let values = FormData(vec![("directory".into(), "letsencrypt".into())]);
            let flash = Some(format!("Account {name} registered."));
            settings_page(&state, &s, None, values, Errors::default(), "", flash).await
        }
        Err(p) => {
            // The form asks for another CA's directory as its URL; a built-in CA's trouble
            // shows at the top of the form.
            let mut p = p;
            if p.field.as_deref() == Some("directory") {
                p.field = (form.value("directory") == "custom").then(|| "directory_url".into());
            }
            let fields =
                ["name", "email", "eab_kid", "eab_hmac_key", "ca_bundle_pem", "directory_url"];
            let errors = Errors::from_problem(&p, &fields);
            settings_page(&state, &s, None, form, errors, "account", None).await
        }
    }
}

pub(super) async fn save_renewal(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let now = state.settings.get();
    let mut errors = Errors::default();
    // Numbers are read here; their ranges are checked with the rest of the settings.
    fn number<T: std::str::FromStr + PartialEq>(
        form: &FormData,
        errors: &mut Errors,
        key: &str,
        current: T,
    ) -> Option<T> {
        let value = form.value(key).trim();
        match value.parse::<T>() {
            Ok(n) => (n != current).then_some(n),
            Err(_) => {
                errors.add(key, format!("{key} must be a whole number, not {value:?}"));
                None
            }
        }
    }
    if form.text("renewal_policy").is_none() {
        errors.add("renewal_policy", "give a renewal policy, e.g. 75% or 30d");
    }
    let changes = certhub_engine::SettingsChanges {
        renewal_policy: form.text("renewal_policy").filter(|p| *p != now.policy),
        check_interval_seconds: number(
            &form,
            &mut errors,
            "check_interval_seconds",
            now.check_interval_secs,
        ),
        expiry_warning_days: number(
            &form,
            &mut errors,
            "expiry_warning_days",
            now.expiry_warning_days,
        ),
        renewal_workers: number(&form, &mut errors, "renewal_workers", now.renewal_workers),
    };
    let unchanged = changes.is_empty();
    if !unchanged && let Err(p) = now.clone().apply(&changes) {
        // Also when a number was unreadable, so that every field's problem shows at once.
        errors.add(p.field.unwrap_or("_"), p.message);
    }
    if errors.is_empty() {
        if unchanged {
            return settings_done(&state, &s, Some("Nothing changed.".into())).await;
        }
        match ops::change_settings(&state, &s.caller, changes).await {
            Ok(said) => {
                let flash = Some(format!("Saved: {}.", said.join(", ")));
                return settings_done(&state, &s, flash).await;
            }
            Err(p) => {
                errors = Errors::from_problem(
                    &p,
                    &[
                        "renewal_policy",
                        "check_interval_seconds",
                        "expiry_warning_days",
                        "renewal_workers",
                    ],
                )
            }
        }
    }
    settings_page(&state, &s, None, form, errors, "renewal", None).await
}

pub(super) async fn add_user(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let username = form.value("username").trim().to_string();
    match ops::add_user(&state, &s.caller, &username, form.value("password"), form.value("role"))
        .await
    {
        Ok(role) => {
            let flash = Some(format!("User {username} added as {}.", role.as_str()));
            settings_done(&state, &s, flash).await
        }
        Err(p) => {
            let errors = Errors::from_problem(&p, &["username", "password", "role"]);
            let values = FormData(vec![
                ("username".into(), username),
                ("role".into(), form.value("role").into()),
            ]);
            settings_page(&state, &s, None, values, errors, "user", None).await
        }
    }
}

/// `POST /settings/users/{name}`: an admin disables (`do=disable`), enables, removes a user,
/// or changes their role (`do=role`, `role=…`).
pub(super) async fn change_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let done = match form.value("do") {
        "remove" => ops::remove_user(&state, &s.caller, &name).await.map(|()| "removed"),
        what => {
            let changes = match what {
                "disable" => ops::UserChanges { disabled: Some(true), ..Default::default() },
                "enable" => ops::UserChanges { disabled: Some(false), ..Default::default() },
                _ => ops::UserChanges {
                    role: Some(form.value("role").to_string()),
                    ..Default::default()
                },
            };
            ops::change_user(&state, &s.caller, &name, changes).await.map(|_| match what {
                "disable" => "disabled: their sessions and tokens no longer work",
                "enable" => "enabled",
                _ => "given the new role",
            })
        }
    };
    match done {
        Ok(what) => settings_done(&state, &s, Some(format!("User {name} {what}."))).await,
        Err(p) => {
            let errors = Errors::from_problem(&p, &[]);
            settings_page(&state, &s, None, FormData::default(), errors, "users", None).await
        }
    }
}

/// `POST /settings/password`: the signed-in user's own password.
pub(super) async fn change_password(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let current = form.value("current_password");
    match ops::change_own_password(&state, &s.caller, current, form.value("new_password")).await {
        Ok(()) => settings_done(&state, &s, Some("Your password is changed.".into())).await,
        Err(p) => {
            let errors = Errors::from_problem(&p, &["current_password", "new_password"]);
            settings_page(&state, &s, None, FormData::default(), errors, "password", None).await
        }
    }
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let label = form.text("label").unwrap_or_else(|| "api".into());
    let scopes: Vec<String> =
        form.0.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    let made = async {
        let expires_at = match form.text("expires_in_days").map(|d| d.parse::<u32>()) {
            None => None,
            Some(Ok(d)) => ops::token_expiry(Some(d))?,
            // Not a number: refused with the same words as one out of range.
            Some(Err(_)) => ops::token_expiry(Some(0))?,
        };
        let user = state
            .store
            .user(&s.caller.user)
            .await?
            .ok_or_else(|| Problem::unauthorized("your user no longer exists"))?;
        let source = &s.caller.source;
        ops::issue_token(&state, &user, TokenKind::Api, &label, Some(scopes), expires_at, source)
            .await
    };
    match made.await {
        Ok((token, _)) => {
            settings_page(&state, &s, Some(token), FormData::default(), Errors::default(), "", None)
                .await
        }
        Err(p) => {
            let errors = Errors::from_problem(&p, &["label", "scopes", "expires_in_days"]);
            settings_page(&state, &s, None, form, errors, "token", None).await
        }
    }
}

pub(super) async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match ops::revoke_token(&state, &s.caller, &id).await {
        Ok(()) => {
            let flash = Some(format!("Token {id} revoked."));
            settings_done(&state, &s, flash).await
        }
        Err(p) => problem_page(p, &s),
    }
}

/// The events a channel can ask for, as the form offers them.
pub(crate) const CHANNEL_EVENTS: &[&str] = certhub_deploy::notify::EVENTS;

pub(super) async fn add_channel(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let kind = form.value("kind").to_string();
    let mut config = serde_json::Map::new();
    let mut put = |key: &str, field: &str| {
        if let Some(v) = form.text(field) {
            config.insert(key.into(), Value::String(v));
        }
    };
    match kind.as_str() {
        "smtp" => {
            for key in ["host", "tls", "username", "password", "from", "to"] {
                put(key, &format!("smtp_{key}"));
            }
        }
        _ => {
            put("url", "url");
            put("secret", "secret");
        }
    }
    if kind == "smtp"
        && let Some(port) = form.text("smtp_port")
    {
        config.insert(
            "port".into(),
            port.parse::<u64>().map(Value::from).unwrap_or(Value::String(port)),
        );
    }
    let events: Vec<String> =
        form.0.iter().filter(|(k, _)| k == "event").map(|(_, v)| v.clone()).collect();
    let req = ops::ChannelBody {
        name: form.value("channel_name").to_string(),
        kind,
        config: Value::Object(config),
        events: Some(events),
    };
    match ops::add_channel(&state, &s.caller, req).await {
        Ok(c) => {
            let flash = Some(format!("Channel {} added. Send it a test to check it.", c.name));
            settings_done(&state, &s, flash).await
        }
        Err(p) => {
            let fields = [
                "name", "kind", "host", "port", "tls", "from", "to", "password", "url", "secret",
                "events",
            ];
            let errors = Errors::from_problem(&p, &fields);
            settings_page(&state, &s, None, form, errors, "channel", None).await
        }
    }
}

pub(super) async fn test_channel(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match ops::send_test(&state, &s.caller, &name).await {
        Ok(Ok(said)) => {
            render(&Fragment { class: "result good", lines: vec![format!("✓ {said}")] })
        }
        Ok(Err(why)) => {
            render(&Fragment { class: "result bad", lines: vec![format!("✗ {why}")] })
        }
        Err(p) => problem_fragment(&p),
    }
}

pub(super) async fn delete_channel(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match ops::remove_channel(&state, &s.caller, &name).await {
        Ok(()) => {
            let flash = Some(format!("Channel {name} removed."));
            settings_done(&state, &s, flash).await
        }
        Err(p) => problem_page(p, &s),
    }
}
