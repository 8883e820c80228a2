//! `certhub serve`: the hub's REST API (`/api/v1`), until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context as _;

use crate::args::Serve;

pub async fn run(ctx: &crate::Context, args: Serve) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let state = certhub_server::AppState::new(store.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("certhub hub listening on http://{addr}/api/v1 (OpenAPI at /api/v1/openapi.json)");
    if let Some(token) = state.setup_token_if_needed().await? {
        // Shown once, on this terminal only: it is not stored anywhere.
        println!("No user yet. Create the first admin within this run with the setup token:");
        println!("  setup token: {token}");
        println!(
            "  curl -X POST http://{addr}/api/v1/setup -H 'content-type: application/json' \\\n       -d '{{\"token\": \"{token}\", \"username\": \"admin\", \"password\": \"…\"}}'"
        );
    }
    let app = certhub_server::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("the hub stopped")?;
    store.close().await;
    println!("certhub hub stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT: requests in flight finish, new ones are refused.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
