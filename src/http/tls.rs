//! TLS on the listener (rustls), and mutual TLS when `server.tls.client_ca` is set: a client must then
//! present a certificate signed by that CA before any HTTP is spoken. The verified certificate's subject
//! and subject alternative names go into every request of the connection ([`PeerIdentity`]), where the
//! partner extractor binds them to the partner configured with that `cert_subject` or `cert_san`.

use super::listener::{Handshake, Limits};
use crate::config::ListenerTls;
use axum::Router;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The rustls configuration; errors name the file at fault.
pub fn server_config(tls: &ListenerTls) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let shown = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        format!("server.tls: {}: {e}", path.display())
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| shown(&tls.cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| shown(&tls.key, &e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| shown(ca, &e))? {
                roots
                    .add(cert.map_err(|e| shown(ca, &e))?)
                    .map_err(|e| shown(ca, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| shown(ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| shown(&tls.cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS handshake of each accepted connection (run by [`super::listener`], under its limits and
/// deadlines); the router serves the connection once the handshake is done.
#[derive(Clone)]
pub struct TlsHandshake {
    acceptor: TlsAcceptor,
    router: Router,
}

impl Handshake for TlsHandshake {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    async fn handshake(&self, stream: TcpStream) -> Option<(Self::Io, Router)> {
        let Ok(tls) = self.acceptor.accept(stream).await else {
            tracing::debug!("TLS handshake refused");
            return None;
        };
        // The client certificate's identity, for the partner extractor (`auth`).
        let router = match PeerIdentity::of_connection(tls.get_ref().1) {
            Some(peer) => self.router.clone().layer(axum::Extension(peer)),
            None => self.router.clone(),
        };
        Some((tls, router))
    }
}

/// Accept TLS connections until `shutdown` completes; each connection is served by the router.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let handshake = TlsHandshake {
        acceptor: TlsAcceptor::from(config),
        router,
    };
    super::listener::serve(listener, handshake, limits, shutdown).await;
}

/// The verified client certificate of a mutual-TLS connection: its subject and subject alternative names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The whole subject, as `CN=..., O=...`.
    pub subject: String,
    /// The subject's common names.
    pub common_names: Vec<String>,
    /// DNS names, URIs, e-mail addresses and IP addresses among the subject alternative names.
    pub sans: Vec<String>,
}

impl PeerIdentity {
    /// The identity of the certificate the client presented (rustls verified it against `client_ca`).
    pub fn of_connection(connection: &rustls::ServerConnection) -> Option<Self> {
        Self::from_der(connection.peer_certificates()?.first()?)
    }

    /// Read a DER certificate; `None` when it cannot be parsed.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
        let sans = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(san_text)
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            subject: cert.subject().to_string(),
            common_names,
            sans,
        })
    }

    /// Whether `subject` is one of its common names or its whole subject.
    pub fn has_subject(&self, subject: &str) -> bool {
        self.subject == subject || self.common_names.iter().any(|cn| cn == subject)
    }

    /// Whether `san` is one of its subject alternative names (case-insensitive).
    pub fn has_san(&self, san: &str) -> bool {
        self.sans.iter().any(|s| s.eq_ignore_ascii_case(san))
    }
}

fn san_text(name: &x509_parser::extensions::GeneralName<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    match name {
        GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => {
            Some((*s).to_owned())
        }
        GeneralName::IPAddress(bytes) => {
            let ip: std::net::IpAddr = match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok()?.into(),
                16 => <[u8; 16]>::try_from(*bytes).ok()?.into(),
                _ => return None,
            };
            Some(ip.to_string())
        }
        _ => None,
    }
}
