//! http-01 answered by certhub's own listener (RFC 8555 §8.3). One listener per address
//! serves every token in flight, so concurrent orders share it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use certhub_core::{PendingChallenge, Solver, SolverError};
use tokio::sync::oneshot;

type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// A running http-01 responder. The listener stops when the responder is dropped.
pub struct Http01Responder {
    tokens: Tokens,
    local_addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Http01Responder {
    /// Listens on `addr` (port 0 picks a free port) and serves
    /// `/.well-known/acme-challenge/{token}`.
    pub async fn bind(addr: SocketAddr) -> Result<Arc<Self>, SolverError> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| {
            SolverError::Io { what: format!("cannot listen on {addr} for http-01"), source }
        })?;
        let local_addr = listener.local_addr().map_err(|source| SolverError::Io {
            what: format!("cannot listen on {addr} for http-01"),
            source,
        })?;
        let tokens: Tokens = Arc::default();
        let app = Router::new()
            .route("/.well-known/acme-challenge/{token}", get(answer))
            .with_state(tokens.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::warn!(%local_addr, error = %e, "http-01 responder stopped");
            }
        });
        Ok(Arc::new(Self { tokens, local_addr, _stop: stop }))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

async fn answer(State(tokens): State<Tokens>, Path(token): Path<String>) -> impl IntoResponse {
    let found = tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&token).cloned();
    match found {
        Some(key_authorization) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], key_authorization)
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[async_trait::async_trait]
impl Solver for Http01Responder {
    async fn present(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(challenge.token.clone(), challenge.key_authorization.clone());
        Ok(())
    }

    async fn cleanup(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(&challenge.token);
        Ok(())
    }
}
