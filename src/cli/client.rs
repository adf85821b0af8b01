//! The CLI's client of REST `/api/v1`: over the local admin socket (local
//! trust, no key) or, with `--remote`/`cli.address`, over HTTP(S) to a
//! remote server with an API key. Requests and answers are the server's
//! own types (`api::v1::model`), so the two cannot drift apart.
//!
//! One HTTP/1.1 connection per request: a CLI run makes a handful. TLS
//! trusts the system's CA store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::{Error, Result};
use crate::api::problem::Problem;

/// Where the server is.
#[derive(Clone)]
pub enum Target {
    /// The admin unix socket.
    Socket(PathBuf),
    /// A server's control URL and the API key to present.
    Remote { url: RemoteUrl, api_key: String },
}

/// `http(s)://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl RemoteUrl {
    pub fn parse(text: &str) -> Result<RemoteUrl> {
        let bad = || {
            Error::Usage(format!(
                "remote address {text:?} is not an http:// or https:// URL"
            ))
        };
        let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else if text.contains("://") {
            return Err(bad());
        } else {
            // Headscale's `cli.address` form, `host:port`, means HTTPS.
            (true, text)
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = match authority.strip_prefix('[') {
            // [v6]:port
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(bad)?;
                let port = match after.strip_prefix(':') {
                    Some(p) => p.parse().map_err(|_| bad())?,
                    None if after.is_empty() => default_port,
                    None => return Err(bad()),
                };
                (h.to_string(), port)
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (authority.to_string(), default_port),
            },
        };
        Ok(RemoteUrl { tls, host, port })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    target: Target,
    timeout: Duration,
}

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

impl Client {
    pub fn new(target: Target, timeout: Duration) -> Client {
        Client { target, timeout }
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Socket(p) => format!("the admin socket {}", p.display()),
            Target::Remote { url, .. } => format!(
                "{}://{}",
                if url.tls { "https" } else { "http" },
                url.authority()
            ),
        }
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        match &self.target {
            Target::Socket(p) => Ok(Box::new(UnixStream::connect(p).await?)),
            Target::Remote { url, .. } => {
                let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
                tcp.set_nodelay(true)?;
                if !url.tls {
                    return Ok(Box::new(tcp));
                }
                let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(std::io::Error::other)?;
                let tls = tls_connector()?.connect(name, tcp).await?;
                Ok(Box::new(tls))
            }
        }
    }

    /// Sends one request; returns the status and body.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        let connect_err = |e: std::io::Error| {
            // Permission is not a "server down" case: say so, with the path.
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && let Target::Socket(p) = &self.target
            {
                return Error::Denied(format!(
                    "cannot connect to the admin socket {}: permission denied (the CLI needs \
                     write access to the socket: run it as the server's user or a member of \
                     the socket's group; see unix_socket_permission)",
                    p.display()
                ));
            }
            Error::Connect(format!("cannot reach {}: {e}", self.describe()))
        };
        let io = self.connect().await.map_err(connect_err)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| Error::Connect(format!("{}: {e}", self.describe())))?;
        tokio::spawn(conn);
        let host = match &self.target {
            Target::Socket(_) => "localhost".to_string(),
            Target::Remote { url, .. } => url.authority(),
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("accept", "application/json");
        if let Target::Remote { api_key, .. } = &self.target
            && !api_key.is_empty()
        {
            req = req.header("authorization", format!("Bearer {api_key}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Usage(format!("bad request: {e}")))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| Error::Connect(format!("{}: {e}", self.describe())))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Connect(format!("{}: {e}", self.describe())))?
            .to_bytes();
        Ok((status, body))
    }

    /// [`Client::exchange`] within the client's timeout.
    async fn timed_exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        tokio::time::timeout(self.timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| {
                Error::Connect(format!(
                    "{} did not answer within {:?}",
                    self.describe(),
                    self.timeout
                ))
            })?
    }

    /// A GET whose status is the answer (`/healthz`): status and body text.
    pub async fn probe(&self, path: &str) -> Result<(StatusCode, String)> {
        let (status, bytes) = self.timed_exchange(Method::GET, path, None).await?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// One call: the JSON answer, or the server's problem as an error.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::Encode(e.to_string()))?;
        let (status, bytes) = self.timed_exchange(method, path, body).await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<Problem>(&bytes)
                .ok()
                .map(|p| {
                    if p.detail.is_empty() {
                        p.title
                    } else {
                        p.detail
                    }
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
            return Err(Error::Api {
                status: status.as_u16(),
                message: if message.is_empty() {
                    status.to_string()
                } else {
                    message
                },
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Encode(format!("unexpected answer from the server: {e}")))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::DELETE, path, None::<&()>).await
    }
}

fn tls_connector() -> std::io::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A certificate the store cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls() {
        let u = RemoteUrl::parse("https://ctl.example").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (true, "ctl.example", 443));
        let u = RemoteUrl::parse("http://10.1.2.3:8080/").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "10.1.2.3", 8080));
        let u = RemoteUrl::parse("https://[fd7a::1]:8443").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("fd7a::1", 8443));
        assert_eq!(u.authority(), "[fd7a::1]:8443");
        let u = RemoteUrl::parse("hs.example.net:50443").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "hs.example.net", 50443)
        );
        for bad in ["ftp://x", "https://", "https://u@x", "http://x:port", ""] {
            assert!(RemoteUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
        assert_eq!(enc("alice"), "alice");
    }
}
