//! The Prometheus exporter-toolkit web configuration (`--web.config.file`): TLS (with client
//! certificates), basic auth with bcrypt hashes, and extra response headers. The format is the
//! one every official exporter reads, so one file serves them all.
//!
//! Certificates, keys and the client CA are re-read when their files change (checked at each
//! TLS handshake by modification time and size), so rotation needs no restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::http::{HeaderName, HeaderValue};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tracing::{error, info, warn};

/// A web config problem: one line at start-up, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read web config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("web config file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// How clients must authenticate with certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    VerifyIfGiven,
    RequireAndVerify,
}

/// The validated web configuration.
#[derive(Debug)]
pub struct WebConfig {
    pub tls: Option<Arc<TlsSource>>,
    /// user → bcrypt hash.
    pub basic_auth_users: BTreeMap<String, String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The headers exporter-toolkit lets a web config set.
const ALLOWED_HEADERS: [&str; 5] = [
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "x-xss-protection",
    "strict-transport-security",
];

impl WebConfig {
    /// Reads and validates the file, building the TLS configuration once so that a bad
    /// certificate is a start-up error rather than a failed handshake.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let invalid = |reason: String| WebConfigError::Invalid { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path)
            .map_err(|e| WebConfigError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
        let file: File = if text.trim().is_empty() {
            File { tls_server_config: None, http_server_config: None, basic_auth_users: None }
        } else {
            serde_norway::from_str(&text).map_err(|e| invalid(e.to_string()))?
        };
        let base = path.parent().unwrap_or(Path::new("."));

        let tls = match file.tls_server_config {
            None => None,
            Some(t) => Some(Arc::new(TlsSource::from_file(t, base).map_err(invalid)?)),
        };

        let mut headers = Vec::new();
        if let Some(http) = file.http_server_config {
            if http.http2 == Some(true) {
                warn!("web config: http2 is not supported; serving HTTP/1.1");
            }
            for (name, value) in http.headers.unwrap_or_default() {
                let lower = name.to_ascii_lowercase();
                if !ALLOWED_HEADERS.contains(&lower.as_str()) {
                    return Err(invalid(format!(
                        "header {name:?} may not be set; allowed: {}",
                        ALLOWED_HEADERS.join(", ")
                    )));
                }
                let value =
                    HeaderValue::from_str(&value).map_err(|_| invalid(format!("header {name:?}: invalid value")))?;
                headers.push((HeaderName::from_bytes(lower.as_bytes()).expect("allowed names are valid"), value));
            }
        }

        let basic_auth_users = file.basic_auth_users.unwrap_or_default();
        for (user, hash) in &basic_auth_users {
            if user.is_empty() || user.contains(':') {
                return Err(invalid(format!("basic_auth_users: invalid user name {user:?}")));
            }
            // The hash itself is not echoed: it is a secret too.
            if bcrypt::verify("", hash).is_err() {
                return Err(invalid(format!("basic_auth_users: the password of {user:?} is not a bcrypt hash")));
            }
        }
        Ok(WebConfig { tls, basic_auth_users, headers })
    }
}

/// Where the TLS material lives, and the server configuration last built from it.
#[derive(Debug)]
pub struct TlsSource {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    client_auth: ClientAuth,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    current: Mutex<(FileStamps, Arc<ServerConfig>)>,
}

/// Modification time and size of each TLS file, to notice a rotation cheaply.
type FileStamps = Vec<Option<(SystemTime, u64)>>;

fn version(name: &str) -> Result<&'static rustls::SupportedProtocolVersion, String> {
    match name {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        "TLS10" | "TLS11" => Err(format!("{name} is not supported (TLS 1.0 and 1.1 are obsolete); use TLS12 or TLS13")),
        other => Err(format!("unknown TLS version {other:?}; use TLS12 or TLS13")),
    }
}

impl TlsSource {
    fn from_file(t: TlsFile, base: &Path) -> Result<TlsSource, String> {
        let resolve = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let cert_file = t.cert_file.map(resolve).ok_or("tls_server_config: cert_file is required")?;
        let key_file = t.key_file.map(resolve).ok_or("tls_server_config: key_file is required")?;
        let client_auth = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
            "NoClientCert" | "" => ClientAuth::None,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
            "RequestClientCert" | "RequireAnyClientCert" => {
                return Err(format!(
                    "client_auth_type {:?} (unverified client certificates) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
                    t.client_auth_type.unwrap_or_default()
                ));
            }
            other => return Err(format!("unknown client_auth_type {other:?}")),
        };
        let client_ca_file = t.client_ca_file.map(resolve);
        if client_auth != ClientAuth::None && client_ca_file.is_none() {
            return Err("client_ca_file is required to verify client certificates".into());
        }
        let min = version(t.min_version.as_deref().unwrap_or("TLS12"))?;
        let max = version(t.max_version.as_deref().unwrap_or("TLS13"))?;
        let order =
            |v: &rustls::SupportedProtocolVersion| if v.version == rustls::ProtocolVersion::TLSv1_2 { 0 } else { 1 };
        if order(min) > order(max) {
            return Err("min_version is above max_version".into());
        }
        let versions: Vec<_> = [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| order(v) >= order(min) && order(v) <= order(max))
            .collect();
        if t.cipher_suites.is_some() || t.curve_preferences.is_some() || t.prefer_server_cipher_suites.is_some() {
            warn!(
                "web config: cipher_suites, curve_preferences and prefer_server_cipher_suites are ignored; only modern AEAD suites are offered"
            );
        }
        let mut source = TlsSource {
            cert_file,
            key_file,
            client_ca_file,
            client_auth,
            versions,
            current: Mutex::new((Vec::new(), Arc::new(placeholder_config()))),
        };
        let stamp = source.stamp();
        let config = source.build()?;
        source.current = Mutex::new((stamp, Arc::new(config)));
        Ok(source)
    }

    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert_file, &self.key_file].into_iter().chain(self.client_ca_file.iter())
    }

    fn stamp(&self) -> FileStamps {
        self.files().map(|f| std::fs::metadata(f).ok().and_then(|m| Some((m.modified().ok()?, m.len())))).collect()
    }

    fn build(&self) -> Result<ServerConfig, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert_file)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| format!("cert_file {}: {e}", self.cert_file.display()))?;
        if certs.is_empty() {
            return Err(format!("cert_file {}: no certificate in it", self.cert_file.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key_file)
            .map_err(|e| format!("key_file {}: {e}", self.key_file.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|e| e.to_string())?;
        let builder = match (&self.client_ca_file, self.client_auth) {
            (Some(ca_file), auth) if auth != ClientAuth::None => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("client_ca_file: {e}"))? {
                    roots
                        .add(cert.map_err(|e| format!("client_ca_file: {e}"))?)
                        .map_err(|e| format!("client_ca_file: {e}"))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier =
                    if auth == ClientAuth::VerifyIfGiven { verifier.allow_unauthenticated() } else { verifier };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("client_ca_file: {e}"))?)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("cert_file/key_file do not make a usable pair: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The server configuration for the next handshake: rebuilt when a file changed, and kept
    /// as it was when the new files are not (yet) usable, e.g. half-way through a rotation.
    pub fn config(&self) -> Arc<ServerConfig> {
        let stamp = self.stamp();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 != stamp {
            match self.build() {
                Ok(config) => {
                    info!("web config: TLS certificate files changed; reloaded");
                    *current = (stamp, Arc::new(config));
                }
                Err(e) => {
                    error!(error = %e, "web config: TLS files changed but cannot be used; keeping the previous ones");
                    current.0 = stamp;
                }
            }
        }
        current.1.clone()
    }
}

/// A configuration that is never served: it only fills the slot until the first build.
fn placeholder_config() -> ServerConfig {
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<WebConfig, WebConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        WebConfig::load(&path)
    }

    #[test]
    fn full_config() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let c = load(&format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS13\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: '{hash}'\n",
        ))
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerify);
        assert_eq!(tls.versions.len(), 1);
        assert_eq!(c.headers[0].0, "x-frame-options");
        assert_eq!(c.basic_auth_users.len(), 1);
    }

    #[test]
    fn empty_file_is_plain_http() {
        let c = load("").unwrap();
        assert!(c.tls.is_none() && c.basic_auth_users.is_empty());
    }

    #[test]
    fn malformed_configs_are_clear_errors() {
        for (yaml, needle) in [
            ("tls_server_config: [", "web.yml"),
            ("tls_server_config:\n  key_file: key.pem\n", "cert_file is required"),
            ("tls_server_config:\n  cert_file: nope.pem\n  key_file: key.pem\n", "nope.pem"),
            ("tls_server_config:\n  cert_file: key.pem\n  key_file: key.pem\n", "cert_file"),
            (
                "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file",
            ),
            ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS10\n", "TLS10"),
            (
                "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: Sometimes\n",
                "Sometimes",
            ),
            ("basic_auth_users:\n  alice: hunter2\n", "not a bcrypt hash"),
            ("http_server_config:\n  headers:\n    Set-Cookie: a=b\n", "Set-Cookie"),
            ("unknown_section: 1\n", "unknown_section"),
        ] {
            let err = load(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml:?}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
