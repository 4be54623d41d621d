//! Loads the TLS certificate chain and key, checking both before the server touches its data.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// What is wrong with the TLS files; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("no PEM certificate found in {path}")]
    NoCertificate { path: String },
    #[error("no PEM private key found in {path}")]
    NoKey { path: String },
    #[error("TLS certificate {cert} and key {key} do not form a usable pair: {reason}")]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
}

/// A TLS acceptor for the configured files, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn load_tls(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let certs = read_certs(&config.cert)?;
    let key = read_key(&config.key)?;
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Mismatch {
            cert: config.cert.display().to_string(),
            key: config.key.display().to_string(),
            reason: e.to_string(),
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read("certificate", path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::NoKey {
        path: path.display().to_string(),
    })
}
