//! End to end: real loopback TCP, TLS with a generated certificate verified the way
//! Tailscale's `sha256-raw:` pin does, the HTTP upgrade, then relaying.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use super::client::Client;
use super::{AllowAll, Server, http, key, tls};

const STEP: Duration = Duration::from_secs(10);

/// Client-side pin check modelled on `tlsdial.SetConfigExpectedCertHash`: exactly one
/// certificate, SHA-256 of its DER equal to the pin, and valid for the dialled name
/// when that name is a DNS name (Go sends no SNI and checks no name for IPs).
#[derive(Debug)]
struct PinVerifier {
    sha256_hex: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General("unexpected multiple certs".into()));
        }
        if hex::encode(Sha256::digest(end_entity.as_ref())) != self.sha256_hex {
            return Err(rustls::Error::General("cert hash mismatch".into()));
        }
        if let ServerName::DnsName(_) = server_name {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
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

/// Serves the DERP router over TLS on a loopback port, as the app would.
async fn start(server: Server, tls: &tls::Tls) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls.server_config));
    let router = http::router(server);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                // As the public listener does for TLS connections.
                let svc = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                    req.extensions_mut().insert(http::OverTls);
                    tower::ServiceExt::oneshot(router.clone(), req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn dial(
    addr: SocketAddr,
    name: &str,
    pin: &str,
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinVerifier {
            sha256_hex: pin.to_string(),
            provider,
        }))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let sn = ServerName::try_from(name.to_string()).expect("name");
    connector.connect(sn, tcp).await
}

#[tokio::test]
async fn relay_over_tls_with_pinned_self_signed_cert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = vec!["derp.example.test".to_string(), "127.0.0.1".to_string()];
    let tls = tls::load_or_generate(&dir.path().join("c.pem"), &dir.path().join("k.pem"), &names)
        .expect("tls");
    let server = Server::new(key::generate(), Arc::new(AllowAll));
    let addr = start(server.clone(), &tls).await;
    let pin = tls.cert_sha256_hex.clone();

    // A wrong pin fails the TLS handshake; so does a host name not in the cert.
    assert!(
        dial(addr, "derp.example.test", &"00".repeat(32))
            .await
            .is_err()
    );
    assert!(dial(addr, "elsewhere.test", &pin).await.is_err());

    // HostName as DNS name (checked) and as IP literal (not checked, like Go).
    let a_tls = dial(addr, "derp.example.test", &pin).await.expect("tls a");
    let b_tls = dial(addr, "127.0.0.1", &pin).await.expect("tls b");

    let (mut a, headers) = tokio::time::timeout(
        STEP,
        Client::connect(a_tls, "derp.example.test", key::generate()),
    )
    .await
    .expect("in time")
    .expect("connect a");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("upgrade").as_deref(), Some("DERP"));
    assert_eq!(header("connection").as_deref(), Some("Upgrade"));
    assert_eq!(header("derp-version").as_deref(), Some("2"));
    assert_eq!(
        header("derp-public-key"),
        Some(hex::encode(server.public_key()))
    );
    assert_eq!(a.server_key(), server.public_key());

    let (mut b, _) =
        tokio::time::timeout(STEP, Client::connect(b_tls, "127.0.0.1", key::generate()))
            .await
            .expect("in time")
            .expect("connect b");

    a.send(b.public_key(), b"over tls").await.expect("send");
    let (src, pkt) = tokio::time::timeout(STEP, b.recv_packet())
        .await
        .expect("in time")
        .expect("recv");
    assert_eq!((src, pkt.as_ref()), (a.public_key(), &b"over tls"[..]));
    b.send(a.public_key(), &[0xAB; 1400]).await.expect("send");
    let (src, pkt) = tokio::time::timeout(STEP, a.recv_packet())
        .await
        .expect("in time")
        .expect("recv");
    assert_eq!((src, pkt.len()), (b.public_key(), 1400));
    assert_eq!(server.stats().clients_connected, 2);
}

#[tokio::test]
async fn plain_http_on_tls_listener_gets_426_and_probes_work() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = tls::load_or_generate(
        &dir.path().join("c.pem"),
        &dir.path().join("k.pem"),
        &["localhost".to_string()],
    )
    .expect("tls");
    let addr = start(Server::new(key::generate(), Arc::new(AllowAll)), &tls).await;
    for (req, want) in [
        (
            "GET /derp HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 426",
        ),
        (
            "GET /derp/latency-check HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200",
        ),
    ] {
        let mut s = dial(addr, "localhost", &tls.cert_sha256_hex)
            .await
            .expect("tls");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut resp = Vec::new();
        let _ = tokio::time::timeout(STEP, s.read_to_end(&mut resp)).await;
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with(want), "{req:?} → {text:?}");
    }
}
