//! Accounts and everything done with one: orders, authorizations, challenges,
//! finalization, certificate download, revocation, key rollover.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::chain::{self, CertificateChain};
use crate::client::{Client, Look};
use crate::error::Error;
use crate::jws::{self, ExternalAccountKey, KeyId, b64};
use crate::key::SigningKey;
use crate::types::{
    AccountResource, Authorization, AuthorizationStatus, Challenge, ChallengeStatus, Identifier,
    Order, OrderStatus, RevocationReason,
};

const PEM_CHAIN: &str = "application/pem-certificate-chain";

/// What newAccount asks for.
#[derive(Debug, Default, Clone)]
pub struct NewAccount<'a> {
    /// Contact URLs, e.g. `mailto:ops@example.com`.
    pub contact: &'a [String],
    /// Agreement to the CA's terms of service.
    pub terms_of_service_agreed: bool,
    /// Only look up an existing account for this key; never create one.
    pub only_return_existing: bool,
    /// External Account Binding, for CAs that require it.
    pub external_account: Option<&'a ExternalAccountKey>,
}

/// What newOrder asks for.
#[derive(Debug, Default, Clone)]
pub struct NewOrder<'a> {
    /// The identifiers (wildcards included as `*.name`).
    pub identifiers: &'a [Identifier],
    /// A profile the CA advertises in `meta.profiles`.
    pub profile: Option<&'a str>,
    /// The ARI certificate identifier of the certificate this order replaces. Sent only
    /// when the CA offers ARI.
    pub replaces: Option<&'a str>,
}

/// An ACME account: a CA connection, the account key and the account URL. Cheap to clone.
#[derive(Clone)]
pub struct Account {
    client: Client,
    key: Arc<SigningKey>,
    url: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("url", &self.url).finish()
    }
}

impl Client {
    /// Registers an account for `key`, or (with `only_return_existing`) finds the one it has.
    /// A CA that already knows the key returns the existing account.
    pub async fn new_account(
        &self,
        key: SigningKey,
        req: &NewAccount<'_>,
    ) -> Result<(Account, AccountResource), Error> {
        let url = self.directory().new_account.clone();
        let mut payload = json!({});
        if !req.contact.is_empty() {
            payload["contact"] = json!(req.contact);
        }
        if req.terms_of_service_agreed {
            payload["termsOfServiceAgreed"] = json!(true);
        }
        if req.only_return_existing {
            payload["onlyReturnExisting"] = json!(true);
        }
        if let Some(eab) = req.external_account {
            payload["externalAccountBinding"] = eab.bind(key.jwk(), &url);
        }
        let rsp = self.post(&url, &key, KeyId::Jwk, Some(&payload), None).await?;
        let account_url = rsp.location()?;
        let resource = rsp.json()?;
        Ok((Account { client: self.clone(), key: Arc::new(key), url: account_url }, resource))
    }

    /// An account known from storage.
    pub fn account(&self, key: SigningKey, url: impl Into<String>) -> Account {
        Account { client: self.clone(), key: Arc::new(key), url: url.into() }
    }

    /// Revokes a certificate with a request signed by the certificate's own key (RFC 8555
    /// §7.6), for when the account is lost or the key is compromised.
    pub async fn revoke_with_certificate_key(
        &self,
        leaf_der: &[u8],
        certificate_key: &SigningKey,
        reason: Option<RevocationReason>,
    ) -> Result<(), Error> {
        let url = self.directory().revoke_cert.clone();
        let payload = revocation_payload(leaf_der, reason);
        self.post(&url, certificate_key, KeyId::Jwk, Some(&payload), None).await?;
        Ok(())
    }
}

fn revocation_payload(leaf_der: &[u8], reason: Option<RevocationReason>) -> Value {
    let mut payload = json!({ "certificate": b64(leaf_der) });
    if let Some(r) = reason {
        payload["reason"] = json!(r.code());
    }
    payload
}

impl Account {
    /// The account URL (the `kid`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The account key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The CA connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn post(
        &self,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<crate::client::Response, Error> {
        self.client.post(url, &self.key, KeyId::Kid(&self.url), payload, None).await
    }

    /// The key authorization for `token` (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.key.thumbprint())
    }

    /// The account as the CA has it.
    pub async fn state(&self) -> Result<AccountResource, Error> {
        self.post(&self.url, None).await?.json()
    }

    /// Replaces the contact URLs.
    pub async fn update_contacts(&self, contact: &[String]) -> Result<AccountResource, Error> {
        self.post(&self.url, Some(&json!({ "contact": contact }))).await?.json()
    }

    /// Deactivates the account for good (§7.3.6).
    pub async fn deactivate(&self) -> Result<AccountResource, Error> {
        self.post(&self.url, Some(&json!({ "status": "deactivated" }))).await?.json()
    }

    /// Rolls the account over to `new_key` (§7.3.5). The returned account signs with the
    /// new key; the old key stops working at the CA.
    pub async fn change_key(&self, new_key: SigningKey) -> Result<Account, Error> {
        let url = self.client.directory().key_change.clone();
        let inner = jws::sign(
            &new_key,
            KeyId::Jwk,
            None,
            &url,
            Some(&json!({ "account": self.url, "oldKey": self.key.jwk() })),
        )?;
        match self.post(&url, Some(&inner)).await {
            Ok(_) => Ok(Account {
                client: self.client.clone(),
                key: Arc::new(new_key),
                url: self.url.clone(),
            }),
            // When the answer was lost after the CA rolled the key over, the request sent
            // again (signed with the old key) is refused: the account found by the new key
            // says whether it was done.
            Err(e) => {
                let existing = NewAccount { only_return_existing: true, ..Default::default() };
                match self.client.new_account(new_key, &existing).await {
                    Ok((account, _)) if account.url == self.url => Ok(account),
                    _ => Err(e),
                }
            }
        }
    }

    /// Places an order; returns its URL and state.
    pub async fn new_order(&self, req: &NewOrder<'_>) -> Result<(String, Order), Error> {
        let dir = self.client.directory();
        let mut payload = json!({ "identifiers": req.identifiers });
        if let Some(profile) = req.profile {
            if dir.meta.profiles.is_empty() {
                return Err(Error::NotSupported(format!(
                    "profile {profile:?} was asked for, but the CA advertises no profiles"
                )));
            }
            if !dir.meta.profiles.contains_key(profile) {
                let names: Vec<_> = dir.meta.profiles.keys().map(String::as_str).collect();
                return Err(Error::NotSupported(format!(
                    "the CA has no profile {profile:?}; it offers {}",
                    names.join(", ")
                )));
            }
            payload["profile"] = json!(profile);
        }
        if let Some(replaces) = req.replaces.filter(|_| dir.renewal_info.is_some()) {
            payload["replaces"] = json!(replaces);
        }
        let url = dir.new_order.clone();
        let rsp = self.post(&url, Some(&payload)).await?;
        Ok((rsp.location()?, rsp.json()?))
    }

    /// The order at `url`, with the Retry-After the CA sent.
    pub async fn order(&self, url: &str) -> Result<(Order, Option<Duration>), Error> {
        let rsp = self.post(url, None).await?;
        Ok((rsp.json()?, rsp.retry_after()))
    }

    /// The authorization at `url`, with Retry-After.
    pub async fn authorization(
        &self,
        url: &str,
    ) -> Result<(Authorization, Option<Duration>), Error> {
        let rsp = self.post(url, None).await?;
        Ok((rsp.json()?, rsp.retry_after()))
    }

    /// Deactivates an authorization (§7.5.2), e.g. after a failed order.
    pub async fn deactivate_authorization(&self, url: &str) -> Result<Authorization, Error> {
        self.post(url, Some(&json!({ "status": "deactivated" }))).await?.json()
    }

    /// Tells the CA the challenge is ready to validate. When the CA refuses, the challenge
    /// is read back: if an earlier answer whose reply was lost already set the CA to work
    /// (the challenge is no longer pending), that is no failure.
    pub async fn respond_challenge(&self, url: &str) -> Result<Challenge, Error> {
        let refused = match self.post(url, Some(&json!({}))).await {
            Ok(rsp) => return rsp.json(),
            Err(Error::Api(e)) if e.status < 500 => Error::Api(e),
            Err(e) => return Err(e),
        };
        match self.post(url, None).await.and_then(|rsp| rsp.json::<Challenge>()) {
            Ok(c) if c.status != ChallengeStatus::Pending => Ok(c),
            _ => Err(refused),
        }
    }

    /// Polls an authorization whose challenge was just answered until it is no longer
    /// pending (the first look after a moment: see [`Look::Soon`]); a failed challenge
    /// becomes [`Error::ChallengeFailed`] with the CA's problem.
    pub async fn wait_authorization(
        &self,
        url: &str,
        deadline: Duration,
    ) -> Result<Authorization, Error> {
        let authz = crate::client::poll(
            &format!("authorization {url}"),
            deadline,
            Look::Soon,
            || self.authorization(url),
            |a: &Authorization| a.status != AuthorizationStatus::Pending,
        )
        .await?;
        if authz.status == AuthorizationStatus::Valid {
            return Ok(authz);
        }
        let failed = authz
            .challenges
            .iter()
            .find(|c| c.status == ChallengeStatus::Invalid || c.error.is_some());
        Err(Error::ChallengeFailed {
            identifier: authz.identifier.value.clone(),
            kind: failed.map(|c| c.kind.to_string()).unwrap_or_else(|| "authorization".into()),
            token: failed.and_then(|c| c.token.clone()),
            problem: failed.and_then(|c| c.error.clone()).map(Box::new),
        })
    }

    /// Polls an order until `done(status)` holds; an invalid order becomes
    /// [`Error::OrderInvalid`] unless `done` accepts it. `first` says when to take the first
    /// look: [`Look::Now`] when the order may already be there (its authorizations just became
    /// valid), [`Look::Soon`] when the CA was just set to work on it (finalized).
    pub async fn wait_order(
        &self,
        url: &str,
        deadline: Duration,
        first: Look,
        done: impl Fn(OrderStatus) -> bool,
    ) -> Result<Order, Error> {
        let order = crate::client::poll(
            &format!("order {url}"),
            deadline,
            first,
            || self.order(url),
            |o: &Order| o.status == OrderStatus::Invalid || done(o.status),
        )
        .await?;
        if order.status == OrderStatus::Invalid && !done(OrderStatus::Invalid) {
            return Err(Error::OrderInvalid {
                url: url.to_string(),
                problem: order.error.map(Box::new),
            });
        }
        Ok(order)
    }

    /// Sends the CSR (DER) to the finalize URL of the order at `order_url`. When the CA
    /// answers `orderNotReady`, the order is read back: if an earlier finalize whose reply
    /// was lost already set the CA to work (processing or valid), that is no failure.
    pub async fn finalize(
        &self,
        order_url: &str,
        finalize_url: &str,
        csr_der: &[u8],
    ) -> Result<Order, Error> {
        let refused = match self.post(finalize_url, Some(&json!({ "csr": b64(csr_der) }))).await {
            Ok(rsp) => return rsp.json(),
            Err(Error::Api(e)) if e.problem.is("orderNotReady") => Error::Api(e),
            Err(e) => return Err(e),
        };
        match self.order(order_url).await {
            Ok((o, _)) if matches!(o.status, OrderStatus::Processing | OrderStatus::Valid) => Ok(o),
            _ => Err(refused),
        }
    }

    /// Downloads the certificate chain. With `preferred_issuer`, the default chain and each
    /// `Link: rel="alternate"` chain are tried in turn, and the first whose topmost
    /// certificate was issued by that common name wins (then any whose chain contains an
    /// issuer of that name); without a match the default chain is kept.
    pub async fn download_certificate(
        &self,
        url: &str,
        preferred_issuer: Option<&str>,
    ) -> Result<CertificateChain, Error> {
        let rsp =
            self.client.post(url, &self.key, KeyId::Kid(&self.url), None, Some(PEM_CHAIN)).await?;
        let default = CertificateChain::from_pem(url, &rsp.body)?;
        let Some(preferred) = preferred_issuer else {
            return Ok(default);
        };
        let mut chains = vec![default];
        for alt in rsp.links("alternate") {
            let rsp = self
                .client
                .post(&alt, &self.key, KeyId::Kid(&self.url), None, Some(PEM_CHAIN))
                .await?;
            chains.push(CertificateChain::from_pem(&alt, &rsp.body)?);
        }
        Ok(chain::select(chains, preferred))
    }

    /// Revokes a certificate issued to this account.
    pub async fn revoke(
        &self,
        leaf_der: &[u8],
        reason: Option<RevocationReason>,
    ) -> Result<(), Error> {
        let url = self.client.directory().revoke_cert.clone();
        self.post(&url, Some(&revocation_payload(leaf_der, reason))).await?;
        Ok(())
    }
}
