//! Accepting and serving connections, plain or TLS, with limits that keep hostile clients
//! bounded: a cap on open connections (in all and per client address), a deadline for request
//! headers and TLS handshakes, a header size limit, and a maximum connection age. `axum::serve`
//! sets none of these, so the connections are driven by hyper directly.
//!
//! When a cap is reached the new connection is not made to wait: the connection that has waited
//! longest without a request in progress (idle keep-alive, headers still unfinished, or TLS
//! handshake still running) is closed to make room, preferring the client address that holds
//! the most connections. Holding idle or half-sent connections therefore only ever displaces
//! the attacker's own older ones, and a scrape, which sends its request at once, gets through.
//! A new connection is refused only when every slot is serving a request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::web_config::TlsSource;

/// Limits on what one client can hold.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections open at once; past it, the longest-waiting idle one is closed for a new one.
    pub max_connections: usize,
    /// Connections open at once from one client address, under the same rule.
    pub max_connections_per_ip: usize,
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
            // Several Prometheus servers behind one NAT address still fit; one client cannot
            // take more than a quarter of the slots.
            max_connections_per_ip: 64,
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
    let table = Arc::new(Table::new(limits.max_connections, limits.max_connections_per_ip));
    let limits = Arc::new(limits);
    loop {
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
        let Some(slot) = table.admit(peer.ip()) else {
            // Every slot is serving a request: nothing idle to shed, so the newcomer goes.
            debug!(%peer, "connection refused: every slot is serving a request");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, limits, watcher) = (app.clone(), tls.clone(), limits.clone(), graceful.watcher());
        tokio::spawn(async move {
            let closed = slot.closed.clone();
            let work = async {
                match tls {
                    None => serve_connection(stream, peer, app, &slot, &limits, watcher).await,
                    Some(tls) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                        match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => serve_connection(stream, peer, app, &slot, &limits, watcher).await,
                            Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                            Err(_) => debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                // Dropping the connection closes the socket; it had no request in progress.
                _ = closed.cancelled() => debug!(%peer, "idle connection closed to make room for a new one"),
                _ = work => {}
            }
        });
        // Let the new connection read the request it may already have sent before the next
        // accept can displace it: under a flood of new connections from one address, a
        // scrape's connection is busy, and safe, before the flood's next one is admitted.
        tokio::task::yield_now().await;
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        warn!("requests still in flight after the shutdown grace period; closing them");
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    slot: &Slot,
    limits: &ServerLimits,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let inner = TowerToHyperService::new(app);
    let (table, id) = (slot.table.clone(), slot.id);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // The client address, for the login throttle (axum's `ConnectInfo` extractor reads it).
        request.extensions_mut().insert(ConnectInfo(peer));
        // Busy from the moment the head is parsed until the response is ready, so that this
        // connection is not shed while it serves a request.
        let busy = Busy::start(table.clone(), id);
        let response = hyper::service::Service::call(&inner, request);
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    });
    let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
    match tokio::time::timeout(limits.max_connection_age, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => debug!(%error, "connection ended with an error"),
        Err(_) => debug!("connection reached its maximum age"),
    }
}

/// The open connections, so that a new one can displace an idle one.
struct Table {
    max: usize,
    max_per_ip: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    next_id: u64,
    open: HashMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
}

struct Entry {
    ip: IpAddr,
    /// A request is being served.
    busy: bool,
    /// When it last started waiting for a request (accepted, or answered its last one).
    waiting_since: Instant,
    /// Cancelled to close the connection.
    closed: CancellationToken,
}

/// One admitted connection; leaving the table when dropped.
struct Slot {
    table: Arc<Table>,
    id: u64,
    closed: CancellationToken,
}

impl Table {
    fn new(max: usize, max_per_ip: usize) -> Table {
        Table { max: max.max(1), max_per_ip: max_per_ip.max(1), inner: Mutex::new(Entries::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The critical sections cannot panic half-way; a poisoned lock holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for a connection from `ip` (closing the idle connection that has waited
    /// longest, from this address if it is at its cap, else from the address holding the most),
    /// or `None` when every candidate is serving a request.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut entries = self.lock();
        let from_ip = entries.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            let victim = entries.longest_waiting(|e| e.ip == ip)?;
            entries.remove(victim);
        } else if entries.open.len() >= self.max {
            let victim = entries.longest_waiting_of_heaviest_ip()?;
            entries.remove(victim);
        }
        let id = entries.next_id;
        entries.next_id += 1;
        let closed = CancellationToken::new();
        entries.open.insert(id, Entry { ip, busy: false, waiting_since: Instant::now(), closed: closed.clone() });
        *entries.per_ip.entry(ip).or_insert(0) += 1;
        Some(Slot { table: self.clone(), id, closed })
    }

    fn set_busy(&self, id: u64, busy: bool) {
        if let Some(entry) = self.lock().open.get_mut(&id) {
            entry.busy = busy;
            if !busy {
                entry.waiting_since = Instant::now();
            }
        }
    }
}

impl Entries {
    fn longest_waiting(&self, pick: impl Fn(&Entry) -> bool) -> Option<u64> {
        self.open.iter().filter(|(_, e)| !e.busy && pick(e)).min_by_key(|(_, e)| e.waiting_since).map(|(id, _)| *id)
    }

    /// The idle connection of the address holding the most connections, the one that has
    /// waited longest among them (ties between addresses too go to the longest waiting).
    fn longest_waiting_of_heaviest_ip(&self) -> Option<u64> {
        let held = |e: &Entry| self.per_ip.get(&e.ip).copied().unwrap_or(0);
        self.open
            .iter()
            .filter(|(_, e)| !e.busy)
            .max_by_key(|(_, e)| (held(e), std::cmp::Reverse(e.waiting_since)))
            .map(|(id, _)| *id)
    }

    /// Forgets a connection (closing it if it is still open); a second call does nothing.
    fn remove(&mut self, id: u64) {
        let Some(entry) = self.open.remove(&id) else { return };
        entry.closed.cancel();
        if let Some(count) = self.per_ip.get_mut(&entry.ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&entry.ip);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.lock().remove(self.id);
    }
}

/// Marks a connection busy while it exists.
struct Busy {
    table: Arc<Table>,
    id: u64,
}

impl Busy {
    fn start(table: Arc<Table>, id: u64) -> Busy {
        table.set_busy(id, true);
        Busy { table, id }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.table.set_busy(self.id, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_full_table_sheds_the_longest_waiting_idle_connection() {
        let table = Arc::new(Table::new(3, 10));
        let first = table.admit(ip(1)).unwrap();
        let second = table.admit(ip(2)).unwrap();
        let third = table.admit(ip(3)).unwrap();
        // The first is serving a request: not a candidate.
        table.set_busy(first.id, true);
        let fourth = table.admit(ip(4)).unwrap();
        assert!(!first.closed.is_cancelled());
        assert!(second.closed.is_cancelled());
        assert!(!third.closed.is_cancelled());
        // Dropping an evicted slot later does not free a second place.
        drop(second);
        assert_eq!(table.lock().open.len(), 3);
        table.set_busy(third.id, true);
        table.set_busy(fourth.id, true);
        // Everything busy: the newcomer is refused rather than a request cut off.
        assert!(table.admit(ip(5)).is_none());
        drop(fourth);
        assert!(table.admit(ip(5)).is_some());
    }

    #[test]
    fn the_address_holding_the_most_pays_first() {
        let table = Arc::new(Table::new(4, 10));
        let scraper = table.admit(ip(9)).unwrap();
        let hog: Vec<Slot> = (0..3).map(|_| table.admit(ip(1)).unwrap()).collect();
        // The scraper's connection is the oldest idle one, but ip 1 holds three.
        let _new = table.admit(ip(1)).unwrap();
        assert!(!scraper.closed.is_cancelled());
        assert!(hog[0].closed.is_cancelled());
        assert_eq!(hog.iter().filter(|s| s.closed.is_cancelled()).count(), 1);
    }

    #[test]
    fn an_address_at_its_cap_displaces_only_its_own() {
        let table = Arc::new(Table::new(100, 2));
        let other = table.admit(ip(9)).unwrap();
        let a = table.admit(ip(1)).unwrap();
        let b = table.admit(ip(1)).unwrap();
        let c = table.admit(ip(1)).unwrap();
        assert!(a.closed.is_cancelled() && !b.closed.is_cancelled() && !c.closed.is_cancelled());
        assert!(!other.closed.is_cancelled());
        assert_eq!(table.lock().per_ip[&ip(1)], 2);
        table.set_busy(b.id, true);
        table.set_busy(c.id, true);
        assert!(table.admit(ip(1)).is_none());
    }
}
