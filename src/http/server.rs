//! Accepting and serving connections, plain or TLS, with limits that keep hostile clients
//! bounded: a cap on open connections, a deadline for request headers and TLS handshakes, a
//! header size limit, and a maximum connection age. `axum::serve` sets none of these, so the
//! connections are driven by hyper directly.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::web_config::TlsSource;

/// Limits on what one client can hold.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time a client has to send its request headers (also while idle between requests).
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// Largest request head accepted; a larger one gets 431.
    pub max_header_bytes: usize,
    /// A connection is closed after this long, whatever it does.
    pub max_connection_age: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connection_age: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight finish within the
/// grace period.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<TlsSource>>,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, limits, watcher) = (app.clone(), tls.clone(), limits.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(stream, app, &limits, watcher).await,
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                    match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, app, &limits, watcher).await,
                        Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        warn!("requests still in flight after the shutdown grace period; closing them");
    }
}

async fn serve_connection<S>(stream: S, app: Router, limits: &ServerLimits, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)));
    match tokio::time::timeout(limits.max_connection_age, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => debug!(%error, "connection ended with an error"),
        Err(_) => debug!("connection reached its maximum age"),
    }
}
