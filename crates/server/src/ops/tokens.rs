//! Sign-in and tokens.

use certhub_store::TokenKind;

use super::OpResult;
use super::views::TokenView;
use crate::auth::{self, Caller, Need, Role, SCOPES};
use crate::clock::now_ms;
use crate::problem::Problem;
use crate::state::AppState;

/// The longest life a token may be given: ten years.
const MAX_TOKEN_DAYS: u32 = 3650;

/// When a token given `days` expires (never for `None`), or why `days` is refused.
pub(crate) fn token_expiry(days: Option<u32>) -> OpResult<Option<i64>> {
    match days {
        None => Ok(None),
        Some(d @ 1..=MAX_TOKEN_DAYS) => Ok(Some(now_ms() + i64::from(d) * 86_400_000)),
        Some(_) => Err(Problem::invalid(
            "expires_in_days",
            format!("use a whole number of days from 1 to {MAX_TOKEN_DAYS}, or none for no expiry"),
        )),
    }
}

/// Checks a name and password (rate limited, and as slow for an unknown name); the user.
pub(crate) async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    source: &str,
) -> OpResult<certhub_store::UserRecord> {
    state.logins.attempt(username, source).await?;
    let user = state.store.user(username).await?;
    // An unknown name costs the same time as a wrong password.
    let phc =
        user.as_ref().map_or_else(|| auth::dummy_hash().to_string(), |u| u.password_hash.clone());
    let password = password.to_string();
    let matches = auth::argon2_task(move || auth::verify_password(&password, &phc)).await?;
    let user = match user {
        Some(u) if matches && !u.signs_in_through_provider() => u,
        _ => {
            let detail = match &user {
                None => "no such user",
                Some(u) if u.signs_in_through_provider() => "not local",
                Some(_) => "wrong password",
            };
            // The name as typed, cut to a user name's longest.
            let name: String = username.chars().take(64).collect();
            state.store.audit("anonymous", "sign-in.fail", &name, source, Some(detail)).await?;
            // The same words whichever it was: they tell no one which names exist.
            return Err(Problem::unauthorized(match &state.oidc {
                Some(oidc) => format!(
                    "wrong user name or password (people who sign in with {} use its button \
                     on the sign-in page, not a password)",
                    oidc.label()
                ),
                None => "wrong user name or password".into(),
            }));
        }
    };
    if user.disabled_at.is_some() {
        state
            .store
            .audit("anonymous", "sign-in.fail", &user.name, source, Some("disabled"))
            .await?;
        return Err(Problem::unauthorized("this user is disabled: an admin can enable it again"));
    }
    state.logins.succeeded(username, source).await?;
    Ok(user)
}

/// Signs in someone an OpenID provider vouched for: the user it named before, or a new
/// user by the name its claim gives, in the role its role claim gives now (a change is
/// audited). Refused for a user an admin disabled, a claim that gives no role (a known
/// user's sessions and tokens then end), and a name a local user (or one from another
/// provider) holds.
pub(crate) async fn sign_in_oidc(
    state: &AppState,
    who: &crate::oidc::Identity,
    source: &str,
) -> OpResult<certhub_store::UserRecord> {
    let known = state.store.oidc_user(&who.issuer, &who.subject).await?;
    let name = known.as_ref().map_or(who.username.as_str(), |u| u.name.as_str()).to_string();
    // A refusal, audited.
    let fail = async |detail: String, problem: Problem| -> OpResult<certhub_store::UserRecord> {
        state.store.audit("anonymous", "sign-in.fail", &name, source, Some(&detail)).await?;
        Err(problem)
    };
    let Some(role) = who.role else {
        let held = if who.values.is_empty() {
            format!("holds no {} claim", who.claim)
        } else {
            format!("has {} {}", who.claim, who.values.join(", "))
        };
        // The provider took every role away: what the user signed in with before stops too.
        if let Some(user) = &known {
            let entry = certhub_store::AuditEntry::new(
                &format!("{} (oidc)", user.name),
                "user.tokens-revoke",
                &user.name,
                source,
            )
            .with_detail(format!("the {} claim gives no role now", who.claim));
            state.store.delete_user_tokens(&user.name, Some(&entry)).await?;
        }
        return fail(
            format!("oidc: no role ({held})"),
            Problem::forbidden(format!(
                "your account at the OpenID provider {held}, which gives no role on this hub; \
                 an admin maps a value to a role with --oidc-role"
            )),
        )
        .await;
    };
    let actor = format!("{name} (oidc)");
    match known {
        Some(user) if user.disabled_at.is_some() => {
            fail(
                "disabled".into(),
                Problem::unauthorized("this user is disabled: an admin can enable it again"),
            )
            .await
        }
        Some(user) if user.role == role.as_str() => Ok(user),
        Some(user) => {
            let entry = certhub_store::AuditEntry::new(&actor, "user.role", &user.name, source)
                .with_detail(format!("{} (from the {} claim)", role.as_str(), who.claim));
            let change = certhub_store::UserChange::Role(role.as_str().into());
            if let Err(e) = state.store.change_user(&user.name, &change, Some(&entry)).await {
                return match e {
                    certhub_store::Error::Invalid { reason, .. } => {
                        let problem = Problem::forbidden(format!(
                            "the OpenID provider makes you a {}, but {reason}",
                            role.as_str()
                        ));
                        fail(format!("oidc: {reason}"), problem).await
                    }
                    e => Err(e.into()),
                };
            }
            Ok(certhub_store::UserRecord { role: role.as_str().into(), ..user })
        }
        None => {
            if super::check_username(&name).is_err() {
                return fail(
                    "oidc: unusable name".into(),
                    Problem::forbidden(format!(
                        "the OpenID provider names you {name:?}, which is not a user name here \
                         (1 to 64 letters, digits, '.', '_', '-' or '@'); an admin can choose \
                         another claim with --oidc-username-claim"
                    )),
                )
                .await;
            }
            let entry = certhub_store::AuditEntry::new(&actor, "user.create", &name, source)
                .with_detail(format!("{} (from the {} claim)", role.as_str(), who.claim));
            match state
                .store
                .insert_oidc_user(&name, role.as_str(), &who.issuer, &who.subject, Some(&entry))
                .await
            {
                Ok(()) => {}
                Err(certhub_store::Error::AlreadyExists { .. }) => {
                    return fail(
                        "oidc: name taken".into(),
                        Problem::conflict(format!(
                            "a user named {name} already exists on this hub and does not sign \
                             in through this provider; an admin can remove or rename that user"
                        )),
                    )
                    .await;
                }
                Err(e) => return Err(e.into()),
            }
            state.store.user(&name).await?.ok_or_else(|| {
                Problem::internal(format!("user {name} was added but cannot be read back"))
            })
        }
    }
}

/// A new token of `user` (an API token or a web session), with `scopes` (all its role allows
/// when `None`); the token, shown once, and its record. Audited.
pub(crate) async fn issue_token(
    state: &AppState,
    user: &certhub_store::UserRecord,
    kind: TokenKind,
    label: &str,
    scopes: Option<Vec<String>>,
    expires_at: Option<i64>,
    source: &str,
) -> OpResult<(String, certhub_store::TokenRecord)> {
    let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
    let allowed: Vec<&str> =
        SCOPES.iter().filter(|(_, least)| role >= *least).map(|(s, _)| *s).collect();
    let scopes = match scopes {
        None => allowed.iter().map(|s| s.to_string()).collect(),
        Some(asked) => {
            for s in &asked {
                if !SCOPES.iter().any(|(k, _)| k == s) {
                    return Err(Problem::invalid(
                        "scopes",
                        format!(
                            "unknown scope {s:?}; scopes are cert:read, cert:request, cert:key, admin"
                        ),
                    ));
                }
                if !allowed.contains(&s.as_str()) {
                    return Err(Problem::invalid(
                        "scopes",
                        format!("a {} cannot hold the {s} scope", role.as_str()),
                    ));
                }
            }
            if asked.is_empty() {
                return Err(Problem::invalid("scopes", "choose at least one scope"));
            }
            asked
        }
    };
    let (token, id, secret) = auth::new_token();
    let record = certhub_store::TokenRecord {
        id: id.clone(),
        user_name: user.name.clone(),
        kind,
        label: label.to_string(),
        scopes: scopes.join(" "),
        expires_at,
        created_at: now_ms(),
        last_used_at: None,
    };
    let action = match kind {
        TokenKind::Session => "session.start",
        TokenKind::Api => "token.create",
    };
    let entry = certhub_store::AuditEntry::new(&user.name, action, &id, source)
        .with_detail(record.scopes.clone());
    state.store.insert_token(&record, &certhub_store::token_hash(&secret), Some(&entry)).await?;
    Ok((token, record))
}

/// The tokens the caller may see: an admin every one, anyone else their own.
pub(crate) async fn tokens(state: &AppState, caller: &Caller) -> OpResult<Vec<TokenView>> {
    caller.require(Need::Read)?;
    let whose = (!caller.may(Need::Admin)).then_some(caller.user.as_str());
    Ok(state.store.tokens(whose).await?.iter().map(TokenView::of).collect())
}

/// Revokes token `id`: the caller's own, or anyone's for an admin. Audited.
pub(crate) async fn revoke_token(state: &AppState, caller: &Caller, id: &str) -> OpResult<()> {
    let own = state.store.tokens(Some(&caller.user)).await?.iter().any(|t| t.id == id);
    if !own {
        // Someone else's token: admins only, and without telling others whether it exists.
        caller.require(Need::Admin).map_err(|_| Problem::not_found(format!("no token {id:?}")))?;
    }
    state.store.delete_token(id, Some(&caller.entry("token.revoke", id))).await?;
    Ok(())
}
