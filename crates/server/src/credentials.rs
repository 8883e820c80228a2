//! Credentials: roles and scopes, tokens and their secrets, password hashes, and the sign-in
//! limiter. Nothing here knows the hub's state.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;

use crate::problem::Problem;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read certificates, accounts and history.
    Viewer,
    /// And request, renew and download keys.
    Operator,
    /// And manage users, settings and the audit log.
    Admin,
}

impl Role {
    /// The role named `s` (`admin`, `operator`, `viewer`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "operator" => Some(Self::Operator),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Viewer => "viewer",
        }
    }
}

/// Token scopes and the least role each needs.
pub(crate) const SCOPES: &[(&str, Role)] = &[
    ("cert:read", Role::Viewer),
    ("cert:request", Role::Operator),
    ("cert:key", Role::Operator),
    ("admin", Role::Admin),
    ("metrics", Role::Viewer),
];

/// A new token: `chb_ID_SECRET`, with the id and the secret.
pub(crate) fn new_token() -> (String, String, String) {
    let id: String = (0..8).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
    let secret = random_secret();
    (format!("chb_{id}_{secret}"), id, secret)
}

pub(crate) fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("chb_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && !secret.is_empty()).then_some((id, secret))
}

/// 32 random bytes, base64url.
pub(crate) fn random_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Result<String, Problem> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(Problem::internal)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(Problem::internal)
}

/// Does `password` match the PHC string?
pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Sign-in failures per client address, and per user name from each address, counted in the
/// store so that every hub sharing the database counts them together. An attempt counts
/// when it is made (so guesses sent in parallel count too, each counted atomically) and is
/// taken back when it succeeds: only failures add up. Beyond [`LoginLimiter::MAX_PER_PAIR`]
/// attempts on one name from one address, or [`LoginLimiter::MAX_PER_SOURCE`] from one
/// address on any names, that address waits until [`LoginLimiter::WINDOW`] has passed since
/// its last attempt (a refused one too). A name is never locked for everyone: guesses from
/// one address cannot keep its owner out, who signs in from their own. IPv6 clients count
/// by their /64, which one client usually holds whole. Counts older than the window are
/// removed with the hub's other clean-up, so a flood of invented names costs rows for a few
/// minutes only.
pub(crate) struct LoginLimiter {
    store: certhub_store::Store,
}

impl LoginLimiter {
    const MAX_PER_PAIR: u32 = 5;
    const MAX_PER_SOURCE: u32 = 20;
    pub(crate) const WINDOW: Duration = Duration::from_secs(300);

    pub fn new(store: certhub_store::Store) -> Self {
        Self { store }
    }

    /// The keys an attempt on `user` from `source` counts under.
    fn keys(user: &str, source: &str) -> [String; 2] {
        let source = match source.parse() {
            Ok(ip) => crate::listen::client_key(ip).to_string(),
            Err(_) => source.to_string(),
        };
        [format!("pair:{source} {user}"), format!("ip:{source}")]
    }

    fn window_ms() -> i64 {
        Self::WINDOW.as_millis() as i64
    }

    /// Counts an attempt for `user` from `source`, or refuses it while that address is
    /// locked for that name or for all.
    pub async fn attempt(&self, user: &str, source: &str) -> Result<(), Problem> {
        let keys = Self::keys(user, source);
        let mut over = false;
        for (key, max) in keys.iter().zip([Self::MAX_PER_PAIR, Self::MAX_PER_SOURCE]) {
            over |= self.store.count_login_failure(key, Self::window_ms()).await? > max;
        }
        if over {
            return Err(Problem::too_many(format!(
                "too many failed sign-ins from this address; try again in {} s",
                Self::WINDOW.as_secs()
            )));
        }
        Ok(())
    }

    /// A successful sign-in takes its attempt back and clears its name's failures from that
    /// address.
    pub async fn succeeded(&self, user: &str, source: &str) -> Result<(), Problem> {
        let [pair, ip] = Self::keys(user, source);
        Ok(self.store.login_succeeded(&pair, &ip).await?)
    }
}

/// Runs argon2 off the async threads, two at a time: hashing takes tens of milliseconds and
/// about 19 MiB, and sign-ins must not stall everything else.
pub(crate) async fn argon2_task<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Problem> {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let _slot = SLOTS.acquire().await.map_err(Problem::internal)?;
    tokio::task::spawn_blocking(f).await.map_err(Problem::internal)
}

/// A hash to verify against when the user does not exist, so the answer takes as long.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("certhub-dummy-password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn limiter() -> (LoginLimiter, tempfile::TempDir) {
        let dir = tempfile::TempDir::new().unwrap();
        let store = certhub_store::Store::open(dir.path()).await.unwrap();
        (LoginLimiter::new(store), dir)
    }

    #[tokio::test]
    async fn guesses_lock_their_address_not_the_name_and_successes_do_not_count() {
        let (limiter, _dir) = limiter().await;
        for _ in 0..LoginLimiter::MAX_PER_PAIR {
            limiter.attempt("admin", "192.0.2.1").await.unwrap();
        }
        let refused = limiter.attempt("admin", "192.0.2.1").await.unwrap_err();
        assert_eq!(refused.status, 429);
        // The owner, from another address, is not kept out.
        limiter.attempt("admin", "198.51.100.7").await.unwrap();
        limiter.succeeded("admin", "198.51.100.7").await.unwrap();
        // Many good sign-ins from one address never add up.
        for _ in 0..3 * LoginLimiter::MAX_PER_SOURCE {
            limiter.attempt("ops", "203.0.113.5").await.unwrap();
            limiter.succeeded("ops", "203.0.113.5").await.unwrap();
        }
        // Failures on many names from one address do, and lock that address for all names.
        for i in 0..LoginLimiter::MAX_PER_SOURCE {
            limiter.attempt(&format!("user{i}"), "203.0.113.9").await.unwrap();
        }
        assert!(limiter.attempt("someone", "203.0.113.9").await.is_err());
        // One IPv6 client counts by its /64.
        for i in 0..LoginLimiter::MAX_PER_PAIR {
            limiter.attempt("admin", &format!("2001:db8:1:2::{i:x}")).await.unwrap();
        }
        assert!(limiter.attempt("admin", "2001:db8:1:2:ffff::1").await.is_err());
        assert!(limiter.attempt("admin", "2001:db8:1:3::1").await.is_ok());
    }

    #[tokio::test]
    async fn hubs_sharing_a_database_count_failures_together() {
        let dir = tempfile::TempDir::new().unwrap();
        let one = LoginLimiter::new(certhub_store::Store::open(dir.path()).await.unwrap());
        let two = LoginLimiter::new(certhub_store::Store::open(dir.path()).await.unwrap());
        for i in 0..LoginLimiter::MAX_PER_PAIR {
            let hub = if i % 2 == 0 { &one } else { &two };
            hub.attempt("admin", "192.0.2.1").await.unwrap();
        }
        assert!(two.attempt("admin", "192.0.2.1").await.is_err());
        assert!(one.attempt("admin", "192.0.2.1").await.is_err());
    }
}
