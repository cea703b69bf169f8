//! TLS for the device's connections to a server given as `https://` (sign-in, sync over
//! `wss://`, uploads, templates): rustls with the Mozilla roots bundled in the binary
//! (webpki-roots), so it works the same on every platform, or — when `FIELDSYNC_CA_FILE` names
//! a PEM file — the certificate authorities in that file instead (a private deployment's own
//! CA, the tests' CA). Plain `http://` stays plain.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::{Error, Result};

/// Names a PEM file of CA certificates to trust instead of the bundled roots.
pub const CA_FILE_VAR: &str = "FIELDSYNC_CA_FILE";

/// The CAs of `FIELDSYNC_CA_FILE`, when it is set; a file that cannot be read or holds no
/// certificate is an error naming the variable, not a silent fall back.
fn custom_roots() -> Result<Option<(PathBuf, Vec<CertificateDer<'static>>)>> {
    let Some(path) = std::env::var_os(CA_FILE_VAR).map(PathBuf::from) else {
        return Ok(None);
    };
    let bad = |why: String| Error::InvalidValue(format!("{CA_FILE_VAR}={}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(Some((path, certs)))
}

/// The rustls configuration of `wss://` connections.
pub fn rustls_config() -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match custom_roots()? {
        Some((path, certs)) => {
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::InvalidValue(format!("{CA_FILE_VAR}={}: {e}", path.display()))
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidValue(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An HTTP agent with the same roots; `status_errors`: an HTTP error status is an `Err` (else
/// the caller reads every status itself).
pub fn agent(connect: Duration, total: Duration, status_errors: bool) -> Result<ureq::Agent> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    let roots = match custom_roots()? {
        Some((_, certs)) => RootCerts::new_with_certs(
            &certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect::<Vec<_>>(),
        ),
        None => RootCerts::WebPki,
    };
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(status_errors)
        .timeout_connect(Some(connect))
        .timeout_global(Some(total))
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(roots)
                .build(),
        )
        .build()
        .into())
}

/// What to tell the user when the TLS handshake with `server` failed: usually a certificate
/// the trusted roots do not vouch for.
pub fn refused(server: &str, e: &dyn std::fmt::Display) -> String {
    format!(
        "cannot set up TLS with {server}: {e} (a server whose certificate comes from a private CA \
         needs that CA in {CA_FILE_VAR})"
    )
}

/// The TLS failure inside an I/O error, if that is what it is (ureq reports a refused
/// certificate as I/O): not "offline", and not worth retrying as it stands.
pub fn failure_in(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// An HTTP client's I/O failure reaching `server`, classed: a refused TLS handshake is said as
/// such (and not retried as it stands), anything else is offline.
pub fn io_failure(server: &str, e: &std::io::Error) -> Error {
    match failure_in(e) {
        Some(tls) => Error::Io(std::io::Error::other(refused(server, tls))),
        None => Error::Offline {
            server: server.to_string(),
            reason: crate::error::io_reason(e),
        },
    }
}
