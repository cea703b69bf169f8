//! The device over TLS: `mobile-shell` signs in over `https://`, syncs over `wss://` and uploads
//! a photo over `https://` to a server behind TLS whose certificate comes from the test's own CA,
//! trusted through `FIELDSYNC_CA_FILE`. Without that, the bundled roots refuse the certificate
//! with an error that says so, and nothing is stored.

use std::net::SocketAddr;
use std::sync::Arc;

use fieldsync_e2e::{Backend, PASSWORD, ServerHome, Team, TestServer, access_token, api};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

/// A CA, and a certificate for `localhost` it signed: (CA PEM, server chain, server key).
fn certificates() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Fieldsync test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca.pem(), vec![leaf.der().clone()], key)
}

/// A TLS front on 127.0.0.1 that hands every connection's bytes to `backend` (as a TLS
/// terminating proxy in front of the server would). Its port.
async fn tls_front(backend: SocketAddr) -> u16 {
    let (ca_pem, chain, key) = certificates();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    std::fs::write(ca_file(), ca_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to forward.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

fn ca_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fieldsync-test-ca-{}.pem", std::process::id()))
}

/// `mobile-shell` in `dir`, with `ca` as its `FIELDSYNC_CA_FILE` (or the bundled roots).
fn shell(
    dir: &std::path::Path,
    ca: Option<&std::path::Path>,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut cmd = std::process::Command::new(fieldsync_test_support::workspace_bin("mobile-shell"));
    cmd.arg("--data-dir").arg(dir).args(args);
    match ca {
        Some(ca) => cmd.env("FIELDSYNC_CA_FILE", ca),
        None => cmd.env_remove("FIELDSYNC_CA_FILE"),
    };
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // One JSON value, or (sync) events a line each with the summary last.
    serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(text.lines().last().unwrap_or("null")))
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_signs_in_syncs_and_uploads_over_tls() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana = team.techs[0].clone();
    let backend: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let port = tls_front(backend).await;
    let https = format!("https://localhost:{port}");
    let ca = ca_file();

    // A job for ana, made over plain HTTP by the dispatcher.
    let token = access_token(server.store(), &team.dispatcher, None).await;
    let (s, job) = api(
        "POST",
        format!("{}/api/v1/jobs", server.url),
        Some(token),
        Some(serde_json::json!({"title": "Over TLS", "assignees": [ana.name]})),
    )
    .await;
    assert_eq!(s, 201, "{job}");
    let job = job["id"].as_str().unwrap().to_string();

    let (https2, ca2, name) = (https.clone(), ca.clone(), ana.name.clone());
    tokio::task::spawn_blocking(move || {
        // Without the CA: the bundled roots do not know it, and the device says so.
        let stranger = tempfile::tempdir().unwrap();
        let out = shell(
            stranger.path(),
            None,
            &[
                "login",
                "--server",
                &https2,
                "--user",
                &name,
                "--password-stdin",
            ],
            PASSWORD,
        );
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot set up TLS"), "{err}");
        assert!(err.contains("FIELDSYNC_CA_FILE"), "{err}");

        // A CA file that holds no certificate is named, not ignored.
        let junk = stranger.path().join("not-a-ca.pem");
        std::fs::write(&junk, "hello").unwrap();
        let out = shell(
            stranger.path(),
            Some(&junk),
            &[
                "login",
                "--server",
                &https2,
                "--user",
                &name,
                "--password-stdin",
            ],
            PASSWORD,
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("FIELDSYNC_CA_FILE"), "{err}");

        // With it: sign in over https, sync over wss, a photo over https.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ok(shell(
            d,
            Some(&ca2),
            &[
                "login",
                "--server",
                &https2,
                "--user",
                &name,
                "--password-stdin",
                "--json",
            ],
            PASSWORD,
        ));
        let synced = ok(shell(d, Some(&ca2), &["sync", "--once", "--json"], ""));
        assert_eq!(synced["templates"]["changed"], true, "{synced}");
        let jobs = ok(shell(d, Some(&ca2), &["jobs", "--json"], ""));
        assert!(jobs.to_string().contains(&job), "{jobs}");
        let png = d.join("meter.png");
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 90]))
            .save(&png)
            .unwrap();
        ok(shell(
            d,
            Some(&ca2),
            &["photo", "add", &job, png.to_str().unwrap(), "--json"],
            "",
        ));
        let synced = ok(shell(d, Some(&ca2), &["sync", "--once", "--json"], ""));
        assert_eq!(synced["uploads"]["done"], 1, "{synced}");
        let status = ok(shell(d, Some(&ca2), &["status", "--json"], ""));
        assert!(status["uploads"].as_array().unwrap().is_empty(), "{status}");
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(ca);
}
