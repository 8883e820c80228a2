//! Sign-in through an OpenID provider: OpenID Connect's authorization code flow with PKCE
//! (the `openidconnect` crate does the protocol: discovery, the token request, the ID
//! token's signature, issuer, audience, expiry and nonce). The user's role comes from a claim
//! (`groups` by default) mapped to roles by the hub's settings, at every sign-in.
//!
//! What a sign-in in progress needs (state, nonce, PKCE verifier, where to go after) travels
//! in one short-lived HttpOnly cookie, so any hub sharing the database can finish it.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse as _,
};
use serde_json::Value;

use crate::credentials::Role;
use crate::problem::Problem;

/// How the hub signs people in through an OpenID provider (`certhub serve --oidc-…`).
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL; its discovery document is under
    /// `/.well-known/openid-configuration`.
    pub issuer: String,
    /// The hub's client id at the provider.
    pub client_id: String,
    /// The client secret, for a confidential client (sent with HTTP Basic).
    pub client_secret: Option<String>,
    /// Where the provider sends browsers back: the hub's `/login/oidc/callback`.
    pub redirect_url: String,
    /// Scopes asked for besides `openid` (e.g. `profile`, `email`, `groups`).
    pub scopes: Vec<String>,
    /// The claim that names the user here (`preferred_username`; then `email`, then `sub`).
    pub username_claim: String,
    /// The claim whose values give the role (a string or a list of strings).
    pub role_claim: String,
    /// `ROLE=VALUE` pairs: a user whose role claim holds VALUE has ROLE (the highest wins).
    pub roles: Vec<String>,
    /// The role of a user whose claim holds none of the values; without one, such a user
    /// cannot sign in.
    pub default_role: Option<String>,
    /// What the sign-in button calls the provider.
    pub label: String,
}

/// The provider, as configured, with its discovery document once read.
pub struct Oidc {
    config: OidcConfig,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    roles: Vec<(Role, String)>,
    default_role: Option<Role>,
    http: Http,
    /// The discovery document and its keys, with when they were read.
    metadata: tokio::sync::Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

/// How long the discovery document (and the provider's keys) is kept before it is read
/// again; an ID token signed by a key not in it has it read again at once.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// How long a browser may take at the provider.
pub(crate) const PENDING_SECS: u64 = 600;

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc").field("issuer", &self.config.issuer).finish()
    }
}

impl Oidc {
    /// Checks `config`: the URLs, and the role mapping, which must let someone in.
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| format!("--oidc-issuer {:?} is not a URL: {e}", config.issuer))?;
        let redirect = RedirectUrl::new(config.redirect_url.clone()).map_err(|e| {
            format!("the sign-in callback {:?} is not a URL: {e}", config.redirect_url)
        })?;
        let parse_role = |s: &str, flag: &str| {
            Role::parse(s.trim()).ok_or_else(|| {
                format!("{flag}: {s:?} is not a role; the roles are admin, operator and viewer")
            })
        };
        let mut roles = Vec::new();
        for pair in &config.roles {
            let Some((role, value)) = pair.split_once('=') else {
                return Err(format!(
                    "--oidc-role {pair:?}: write ROLE=VALUE, e.g. admin=certhub-admins"
                ));
            };
            if value.is_empty() {
                return Err(format!("--oidc-role {pair:?}: the claim value is empty"));
            }
            roles.push((parse_role(role, "--oidc-role")?, value.to_string()));
        }
        let default_role = config
            .default_role
            .as_deref()
            .map(|r| parse_role(r, "--oidc-default-role"))
            .transpose()?;
        if roles.is_empty() && default_role.is_none() {
            return Err("give --oidc-role ROLE=VALUE (or --oidc-default-role): without either, \
                        nobody could sign in through the provider"
                .into());
        }
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer send the hub elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Self {
            config,
            issuer,
            redirect,
            roles,
            default_role,
            http: Http(http),
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    /// Reads the provider's discovery document (a failure is logged and returned).
    pub async fn discover(&self) -> Result<(), Problem> {
        self.metadata(false).await.map(|_| ())
    }

    /// What the sign-in button calls the provider.
    pub(crate) fn label(&self) -> &str {
        &self.config.label
    }

    /// The provider's discovery document: the one kept, or read now when there is none,
    /// it is old, or `fresh` asks for it.
    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, Problem> {
        let mut kept = self.metadata.lock().await;
        if let Some((m, at)) = kept.as_ref()
            && !fresh
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let m = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                tracing::warn!(issuer = %self.config.issuer, error = %chain(&e), "OpenID discovery failed");
                Problem::unavailable(format!(
                    "the OpenID provider at {} cannot be reached or sent no usable discovery \
                     document ({}); sign in with a password, or try again later",
                    self.config.issuer,
                    chain(&e)
                ))
            })?;
        *kept = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    fn client(
        &self,
        m: CoreProviderMetadata,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            m,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Starts a sign-in that returns to `next`: the provider's URL to send the browser to,
    /// and what the callback needs (to keep in the browser's cookie).
    pub(crate) async fn begin(&self, next: &str) -> Result<(String, Pending), Problem> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            next: next.to_string(),
        };
        Ok((url.to_string(), pending))
    }

    /// Finishes a sign-in: exchanges `code` for tokens, verifies the ID token against
    /// `pending`, and reads who it names and their role.
    pub(crate) async fn finish(&self, pending: &Pending, code: &str) -> Result<Identity, Problem> {
        let provider = &self.config.issuer;
        let client = self.client(self.metadata(false).await?);
        let refused = |what: &str, e: &dyn std::error::Error| {
            tracing::warn!(issuer = %provider, error = %chain(e), "OpenID sign-in failed: {what}");
            Problem::unauthorized(format!(
                "the OpenID provider's answer was not accepted: {what} ({}); sign in again",
                chain(e)
            ))
        };
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| refused("it names no token endpoint", &e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| refused("the code was not exchanged for tokens", &e))?;
        let id_token = tokens.id_token().ok_or_else(|| {
            Problem::unauthorized(format!(
                "the OpenID provider at {provider} sent no ID token; is `openid` among the \
                 client's scopes there?"
            ))
        })?;
        let nonce = Nonce::new(pending.nonce.clone());
        // A signature that no key read before verifies may be by a key the provider began to
        // sign with since: the keys are read again, once. Any other failure stands as it is.
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            Err(first) => {
                let fresh = match &first {
                    ClaimsVerificationError::SignatureVerification(_) => {
                        self.metadata(true).await.ok().map(|m| self.client(m))
                    }
                    _ => None,
                };
                fresh
                    .and_then(|c| id_token.claims(&c.id_token_verifier(), &nonce).ok().cloned())
                    .ok_or_else(|| refused("the ID token does not verify", &first))?
            }
        };
        // Verified above; its other claims are read as sent.
        let mut raw = payload(&id_token.to_string())
            .ok_or_else(|| Problem::unauthorized("the ID token's claims are not JSON"))?;
        let subject = claims.subject().to_string();
        if raw.get(&self.config.role_claim).is_none()
            && let Some(url) = client.user_info_url()
        {
            // Not in the ID token: providers often give it at the userinfo endpoint only.
            match self.user_info(url.as_str(), tokens.access_token().secret()).await {
                Ok(info) if info.get("sub").and_then(Value::as_str) == Some(subject.as_str()) => {
                    if let (Value::Object(raw), Value::Object(info)) = (&mut raw, info) {
                        for (k, v) in info {
                            raw.entry(k).or_insert(v);
                        }
                    }
                }
                Ok(_) => {
                    tracing::warn!(issuer = %provider, "userinfo named another subject; ignored")
                }
                Err(e) => tracing::warn!(issuer = %provider, error = %e, "userinfo failed"),
            }
        }
        // An email address names the user only once the provider has verified it: anyone
        // could otherwise take a colleague's name before their first sign-in.
        let verified = matches!(raw.get("email_verified"), Some(v) if v == true || v == "true");
        let username = [self.config.username_claim.as_str(), "email", "sub"]
            .iter()
            .filter(|c| **c != "email" || verified)
            .find_map(|c| raw.get(*c).and_then(Value::as_str).filter(|s| !s.is_empty()))
            .unwrap_or(&subject)
            .to_string();
        let values = claim_values(raw.get(&self.config.role_claim));
        let role = self
            .roles
            .iter()
            .filter(|(_, v)| values.contains(v))
            .map(|(r, _)| *r)
            .max()
            .or(self.default_role);
        Ok(Identity {
            issuer: claims.issuer().as_str().to_string(),
            subject,
            username,
            role,
            claim: self.config.role_claim.clone(),
            values,
        })
    }

    async fn user_info(&self, url: &str, access_token: &str) -> Result<Value, reqwest::Error> {
        self.http
            .0
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }
}

/// Who an ID token names.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The provider (`iss`).
    pub issuer: String,
    /// Its name for the user (`sub`).
    pub subject: String,
    /// The user name here.
    pub username: String,
    /// The role the claim gives; `None` when it gives none.
    pub role: Option<Role>,
    /// The role claim's name, and what it held.
    pub claim: String,
    pub values: Vec<String>,
}

/// A sign-in under way, kept in the browser's cookie until the provider sends it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The `state` the callback must bring back.
    pub state: String,
    nonce: String,
    verifier: String,
    /// Where to go once signed in.
    pub next: String,
}

impl Pending {
    /// As a cookie value: the four parts, base64url, joined by dots.
    pub(crate) fn to_cookie(&self) -> String {
        [&self.state, &self.nonce, &self.verifier, &self.next]
            .map(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p))
            .join(".")
    }

    /// Read back from [`Pending::to_cookie`]'s value.
    pub(crate) fn from_cookie(value: &str) -> Option<Self> {
        let mut parts = value.split('.').map(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        });
        let mut next = || parts.next().flatten();
        let pending = Pending { state: next()?, nonce: next()?, verifier: next()?, next: next()? };
        Some(pending)
    }
}

/// A claim's values: a string, or the strings of a list.
fn claim_values(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            items.iter().filter_map(Value::as_str).map(str::to_string).collect()
        }
        _ => Vec::new(),
    }
}

/// The claims of a compact JWT, as JSON (its signature must have been checked).
fn payload(jwt: &str) -> Option<Value> {
    let part = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An error with its causes, once each.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// The HTTP client the `openidconnect` crate sends its requests with.
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = reqwest::Error;
    type Future = Pin<
        Box<dyn Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send + 'c>,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let rsp = self.0.execute(reqwest::Request::try_from(request)?).await?;
            let (status, headers) = (rsp.status(), rsp.headers().clone());
            let mut out = openidconnect::http::Response::new(rsp.bytes().await?.to_vec());
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(roles: &[&str], default_role: Option<&str>) -> OidcConfig {
        OidcConfig {
            issuer: "https://id.example".into(),
            client_id: "certhub".into(),
            client_secret: None,
            redirect_url: "https://hub.example/login/oidc/callback".into(),
            scopes: vec![],
            username_claim: "preferred_username".into(),
            role_claim: "groups".into(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            default_role: default_role.map(str::to_string),
            label: "single sign-on".into(),
        }
    }

    #[test]
    fn a_pending_sign_in_survives_its_cookie() {
        let p = Pending {
            state: "s".into(),
            nonce: "n.n".into(),
            verifier: "v;=v".into(),
            next: "/certificates?q=a b".into(),
        };
        let value = p.to_cookie();
        assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{value}");
        assert_eq!(Pending::from_cookie(&value), Some(p));
        assert_eq!(Pending::from_cookie("a.b"), None);
        assert_eq!(Pending::from_cookie("!!.b.c.d"), None);
    }

    #[test]
    fn the_role_mapping_is_checked_and_must_let_someone_in() {
        let e = Oidc::new(config(&[], None)).unwrap_err();
        assert!(e.contains("--oidc-role ROLE=VALUE"), "{e}");
        let e = Oidc::new(config(&["boss=admins"], None)).unwrap_err();
        assert!(e.contains("\"boss\" is not a role"), "{e}");
        let e = Oidc::new(config(&["admin"], None)).unwrap_err();
        assert!(e.contains("ROLE=VALUE"), "{e}");
        let e = Oidc::new(config(&[], Some("root"))).unwrap_err();
        assert!(e.contains("--oidc-default-role"), "{e}");
        assert!(Oidc::new(config(&[], Some("viewer"))).is_ok());
        assert!(Oidc::new(config(&["admin=ops", "viewer=staff"], None)).is_ok());
    }

    #[test]
    fn claims_are_a_string_or_a_list_of_strings() {
        let v = serde_json::json!(["a", 1, "b"]);
        assert_eq!(claim_values(Some(&v)), ["a", "b"]);
        assert_eq!(claim_values(Some(&serde_json::json!("x"))), ["x"]);
        assert!(claim_values(Some(&serde_json::json!({"a": 1}))).is_empty());
        assert!(claim_values(None).is_empty());
    }
}
