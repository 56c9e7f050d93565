//! How a QUIC client trusts its server: a pinned certificate fingerprint or
//! a CA file, and the TLS configuration built from it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::client::ClientError;
use crate::transport::quic::{self, parse_fingerprint};

/// How a QUIC client decides that it talks to the right server. There is
/// deliberately no way to skip the check.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerTrust {
    /// The SHA-256 of the server's end-entity certificate (DER), as `ternd`
    /// prints it at start. The server must prove it holds the certificate's
    /// key; names and dates are not checked (the pin is the identity).
    Fingerprint([u8; 32]),
    /// A PEM file of trusted certificates (a CA, or the server's own
    /// certificate): ordinary WebPKI verification, including the server
    /// name (the host of the address, or [`QuicOptions::server_name`]).
    CaFile(PathBuf),
}

impl ServerTrust {
    /// A pin from its hex spelling (`ab12…`, `AB:12:…` or `sha256:ab12…`).
    pub fn fingerprint(hex: &str) -> Result<ServerTrust, ClientError> {
        parse_fingerprint(hex)
            .map(ServerTrust::Fingerprint)
            .ok_or_else(|| ClientError::Quic(format!("not a SHA-256 fingerprint: {hex:?}")))
    }
}

impl fmt::Debug for ServerTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerTrust::Fingerprint(fp) => write!(f, "Fingerprint(sha256:{})", hex::encode(fp)),
            ServerTrust::CaFile(p) => f.debug_tuple("CaFile").field(p).finish(),
        }
    }
}

/// QUIC settings of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuicOptions {
    /// How the server certificate is verified; required for QUIC.
    pub trust: Option<ServerTrust>,
    /// TLS server name; `None`: the host of the server address.
    pub server_name: Option<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A QUIC client configuration that verifies the server as `trust` says,
/// with the shared transport parameters and `idle` as idle timeout.
pub(super) fn client_config(
    trust: &ServerTrust,
    idle: Duration,
) -> Result<quinn::ClientConfig, ClientError> {
    let tls_err = |e: rustls::Error| ClientError::Quic(e.to_string());
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?;
    let mut tls = match trust {
        ServerTrust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                sha256: *fp,
                provider: provider(),
            }))
            .with_no_client_auth(),
        ServerTrust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientError::Quic(format!("{}: {e}", path.display())))?;
            for c in certs {
                roots.add(c).map_err(tls_err)?;
            }
            if roots.is_empty() {
                return Err(ClientError::Quic(format!(
                    "{}: no certificate",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![quic::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(quic::transport_config(idle)));
    Ok(cfg)
}

/// Accepts exactly the server certificate whose SHA-256 is pinned, and
/// checks the handshake signature against it (so the server must hold its
/// private key).
#[derive(Debug)]
struct PinnedCert {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        // Not secret, but compare without an early exit all the same.
        let diff = got
            .iter()
            .zip(self.sha256.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
