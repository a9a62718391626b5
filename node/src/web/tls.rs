//! Serving the web page over TLS (rustls) from a certificate file and its
//! private key, both PEM: what a site's IT gives a server on its network.
//! The certificate file may hold the chain (the server's certificate
//! first); the key may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC).

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// Why a certificate and key could not be used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read, or holds no PEM of the kind needed.
    #[error("cannot read the {what} from {path}: {detail}")]
    File {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The key does not fit the certificate, or either is unusable.
    #[error("the certificate and key cannot be used together: {0}")]
    Config(String),
}

/// A rustls server configuration from a PEM certificate (chain) file and
/// a PEM private key file, offering HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let file_error = |what, path: &Path, detail: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        detail,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error("certificate", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(
            "certificate",
            cert,
            "it holds no PEM CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_error("private key", key, e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
