//! The HTTP server under a web config (TLS, mTLS, basic auth, headers, certificate rotation)
//! and against hostile clients (huge headers, slowloris, idle connections, odd methods).
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, account, config, fake_api};
use gcore_iam_exporter::config::Config;
use gcore_iam_exporter::http::web_config::WebConfig;
use gcore_iam_fake::{FakeApi, FakeUser};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tokio_util::sync::CancellationToken;

/// A CA, a server certificate for localhost signed by it, and a client certificate.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_identity: String,
}

fn pki(name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&server_key, &ca).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["prometheus".to_string()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_identity: format!("{}{}", client.pem(), client_key.serialize_pem()),
    }
}

fn write_tls_files(dir: &Path, pki: &Pki) {
    std::fs::write(dir.join("server.pem"), &pki.server_cert).unwrap();
    std::fs::write(dir.join("server.key"), &pki.server_key).unwrap();
    std::fs::write(dir.join("ca.pem"), &pki.ca).unwrap();
}

async fn exporter(web_yaml: Option<(&Path, &str)>, tweak: impl FnOnce(&mut Config)) -> (Harness, CancellationToken) {
    let shutdown = CancellationToken::new();
    let api = FakeApi::new("42_webkey", vec![FakeUser::new(1)]);
    let addr = fake_api(&api, &shutdown).await;
    let mut cfg = config(vec![account("acme", addr, "42_webkey")]);
    if let Some((dir, yaml)) = web_yaml {
        let path = dir.join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        cfg.web = Some(Arc::new(WebConfig::load(&path).expect("web config loads")));
    }
    tweak(&mut cfg);
    (Harness::start(cfg).await, shutdown)
}

fn https_client(pki: &Pki, with_identity: bool) -> reqwest::Client {
    let mut builder =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(pki.ca.as_bytes()).unwrap());
    if with_identity {
        builder = builder.identity(reqwest::Identity::from_pem(pki.client_identity.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn https(h: &Harness, path: &str) -> String {
    format!("https://localhost:{}{}", h.addr.port(), path)
}

#[tokio::test]
async fn tls_scrape_works_and_plain_http_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki("tls");
    write_tls_files(dir.path(), &pki);
    let (h, _api) =
        exporter(Some((dir.path(), "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n")), |_| {})
            .await;
    let response = https_client(&pki, false).get(https(&h, "/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("gcore_iam_up"));
    let plain = reqwest::get(h.url("/metrics")).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test]
async fn mtls_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = pki("mtls");
    write_tls_files(dir.path(), &certs);
    let (h, _api) = exporter(
        Some((
            dir.path(),
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
        )),
        |_| {},
    )
    .await;
    assert!(https_client(&certs, false).get(https(&h, "/metrics")).send().await.is_err());
    // A certificate from another CA is refused too.
    let stranger = pki("stranger");
    let mut foreign = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certs.ca.as_bytes()).unwrap())
        .identity(reqwest::Identity::from_pem(stranger.client_identity.as_bytes()).unwrap())
        .build()
        .unwrap()
        .get(https(&h, "/metrics"))
        .send()
        .await;
    assert!(foreign.is_err(), "{foreign:?}");
    foreign = https_client(&certs, true).get(https(&h, "/metrics")).send().await;
    assert_eq!(foreign.unwrap().status(), 200);
}

#[tokio::test]
async fn basic_auth_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret-pw", 4).unwrap();
    let yaml = format!(
        "basic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n"
    );
    let (h, _api) = exporter(Some((dir.path(), &yaml)), |_| {}).await;
    let http = reqwest::Client::new();
    let none = http.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let wrong = http.get(h.url("/metrics")).basic_auth("prometheus", Some("nope")).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let unknown = http.get(h.url("/metrics")).basic_auth("root", Some("s3cret-pw")).send().await.unwrap();
    assert_eq!(unknown.status(), 401);
    assert_eq!(http.get(h.url("/")).send().await.unwrap().status(), 401);
    let right = http.get(h.url("/metrics")).basic_auth("prometheus", Some("s3cret-pw")).send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(right.headers()["x-frame-options"], "deny");
    assert_eq!(right.headers()["strict-transport-security"], "max-age=31536000");
    // Probes need no credentials.
    assert_eq!(http.get(h.url("/-/healthy")).send().await.unwrap().status(), 200);
    assert_ne!(http.get(h.url("/-/ready")).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn rotated_certificates_are_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = pki("old");
    write_tls_files(dir.path(), &old);
    let (h, _api) =
        exporter(Some((dir.path(), "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n")), |_| {})
            .await;
    let new = pki("new");
    assert!(https_client(&new, false).get(https(&h, "/-/healthy")).send().await.is_err());
    // Key first, then certificate, as a rotation script would: in between, the mismatched pair
    // is refused and the old one keeps being served.
    std::fs::write(dir.path().join("server.key"), &new.server_key).unwrap();
    assert_eq!(https_client(&old, false).get(https(&h, "/-/healthy")).send().await.unwrap().status(), 200);
    std::fs::write(dir.path().join("server.pem"), &new.server_cert).unwrap();
    let response = https_client(&new, false).get(https(&h, "/-/healthy")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn a_malformed_web_config_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gcore-iam-exporter"))
        .args(["--web.config.file", path.to_str().unwrap()])
        .env_clear()
        .env("GCORE_API_KEY", "42_k")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing.pem") && stderr.trim().lines().count() == 1, "{stderr}");
}

/// Sends raw bytes and returns what the server answered before closing (or within `wait`).
fn raw_exchange(addr: std::net::SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_clients_are_bounded() {
    let (h, _api) = exporter(None, |c| {
        c.server_limits.header_read_timeout = Duration::from_millis(500);
        c.server_limits.max_connections = 8;
    })
    .await;
    let addr = h.addr;
    tokio::task::spawn_blocking(move || {
        // A huge header: 431, not a crash or an allocation without bound.
        let huge = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000));
        let answer = raw_exchange(addr, huge.as_bytes(), Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");

        // A slow client that never finishes its headers is cut off after the header timeout.
        let started = Instant::now();
        let answer = raw_exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n", Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(5), "slow client held for {:?}", started.elapsed());
        assert!(!answer.contains("200 OK"), "{answer}");

        // More idle connections than the server serves at once: they are closed after the
        // header timeout, and a real scrape gets through meanwhile.
        let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let started = Instant::now();
        let answer = raw_exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.80}");
        assert!(started.elapsed() < Duration::from_secs(5), "scrape waited {:?}", started.elapsed());
        for mut stream in idle {
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            // 0 bytes (closed) or an error (reset) both mean the server let go.
            assert!(matches!(stream.read(&mut buf), Ok(0) | Err(_)), "idle connection still open");
        }

        // Methods other than GET and HEAD, and unknown paths.
        for (request, status) in [
            ("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "405"),
            ("PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "405"),
            ("DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "405"),
            ("GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "404"),
            ("HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "200"),
            ("BREW /pot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "40"),
            ("garbage\r\n\r\n", "400"),
        ] {
            let answer = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5));
            assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{request:?} -> {answer:.80}");
        }
    })
    .await
    .unwrap();
}
