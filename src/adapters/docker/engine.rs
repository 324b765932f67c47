//! The Engine's address and the raw-JSON path to it, used only where bollard's models would
//! drop fields: a container's inspected configuration → the create of its successor, and a
//! service spec's round trip. bollard follows the newest API and drops fields older Engines
//! still use for user settings (e.g. `Config.MacAddress` before API 1.44); copying the JSON
//! as the Engine wrote it keeps every field, known to this code or not.
//!
//! Same policy as the typed client: every call has a timeout (a hung Engine fails the call
//! as transient instead of holding a lock forever), an HTTP error keeps its status.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::ports::RuntimeError;

/// The default socket when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Where the Engine listens: `DOCKER_HOST` as given, or the default socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, plain HTTP (`tcp://`).
    Tcp(String),
}

impl Endpoint {
    /// Reads `DOCKER_HOST` (`unix:///path` or `tcp://host:port`); anything else is an error
    /// that names the value — never silently replaced by the default socket.
    pub fn from_docker_host(docker_host: Option<&str>) -> Result<Self, String> {
        let Some(value) = docker_host.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)));
        };
        if let Some(path) = value.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "DOCKER_HOST={value:?}: a unix:// address needs an absolute path (unix:///run/docker.sock)"
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = value.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            let port_ok = addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok || addr.contains('/') {
                return Err(format!(
                    "DOCKER_HOST={value:?}: a tcp:// address is host:port (tcp://127.0.0.1:2375)"
                ));
            }
            return Ok(Endpoint::Tcp(addr.to_owned()));
        }
        Err(format!(
            "DOCKER_HOST={value:?}: only unix:// and tcp:// addresses are supported"
        ))
    }

    /// How it reads in messages.
    pub fn display(&self) -> String {
        match self {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

/// One raw call: what to send and how long it may take.
pub struct Call<'a> {
    pub operation: &'static str,
    pub method: Method,
    /// Path with the API version (`/v1.41/containers/…`).
    pub path: &'a str,
    pub body: Option<&'a Value>,
    pub headers: &'a [(&'a str, &'a str)],
    pub timeout: Duration,
}

/// Sends `call` to the Engine; returns the JSON body (`Null` when empty). An HTTP status of
/// 400 or more is an error carrying that status.
pub async fn call(endpoint: &Endpoint, call: Call<'_>) -> Result<Value, RuntimeError> {
    let operation = call.operation;
    let timeout = call.timeout;
    let sent = async {
        let response = respond(endpoint, &call).await?;
        let status = response.status().as_u16();
        let raw = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(operation, endpoint, &e))?
            .to_bytes();
        answer(operation, status, &raw)
    };
    match tokio::time::timeout(timeout, sent).await {
        Ok(result) => result,
        Err(_) => Err(RuntimeError::timed_out(operation, timeout)),
    }
}

/// Sends `call` and hands each piece of the answer's body to `sink` as it arrives, until the
/// body ends (`Ok(true)`) or `call.timeout` passes (`Ok(false)`: what arrived was handed on).
/// For answers that are streams (an exec's output), never held whole in memory.
pub async fn stream(
    endpoint: &Endpoint,
    call: Call<'_>,
    mut sink: impl FnMut(&[u8]) + Send,
) -> Result<bool, RuntimeError> {
    let operation = call.operation;
    let read = async {
        let response = respond(endpoint, &call).await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status >= 400 {
            let raw = body
                .collect()
                .await
                .map_err(|e| unreachable(operation, endpoint, &e))?
                .to_bytes();
            return answer(operation, status, &raw).map(|_| ());
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| unreachable(operation, endpoint, &e))?;
            if let Some(data) = frame.data_ref() {
                sink(data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(call.timeout, read).await {
        Ok(result) => result.map(|()| true),
        Err(_) => Ok(false),
    }
}

fn unreachable(
    operation: &'static str,
    endpoint: &Endpoint,
    e: &dyn std::fmt::Display,
) -> RuntimeError {
    RuntimeError::transient(operation, format!("{}: {e}", endpoint.display()))
}

/// Connects and sends `call`; the response's head has arrived, its body has not.
async fn respond(
    endpoint: &Endpoint,
    call: &Call<'_>,
) -> Result<hyper::Response<hyper::body::Incoming>, RuntimeError> {
    let op = call.operation;
    match endpoint {
        Endpoint::Unix(path) => {
            let stream = UnixStream::connect(path)
                .await
                .map_err(|e| unreachable(op, endpoint, &e))?;
            request(stream, endpoint, call).await
        }
        Endpoint::Tcp(addr) => {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| unreachable(op, endpoint, &e))?;
            request(stream, endpoint, call).await
        }
    }
}

async fn request<S>(
    stream: S,
    endpoint: &Endpoint,
    call: &Call<'_>,
) -> Result<hyper::Response<hyper::body::Incoming>, RuntimeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let op = call.operation;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(op, endpoint, &e))?;
    tokio::spawn(conn);
    let bytes = call.body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = Request::builder()
        .method(call.method.clone())
        .uri(call.path)
        .header("Host", "docker")
        .header("Content-Type", "application/json");
    for (name, value) in call.headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| RuntimeError::permanent(op, e.to_string()))?;
    sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(op, endpoint, &e))
}

/// The JSON of an answer's body; a status of 400 or more is an error carrying it.
fn answer(op: &'static str, status: u16, raw: &[u8]) -> Result<Value, RuntimeError> {
    let value = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned()))
    };
    if status >= 400 {
        let message = value["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        return Err(super::podman::http_error(op, status, message));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_is_honoured_as_given_or_refused_by_name() {
        assert_eq!(
            Endpoint::from_docker_host(None).unwrap(),
            Endpoint::Unix(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            Endpoint::from_docker_host(Some("unix:///run/podman/podman.sock")).unwrap(),
            Endpoint::Unix("/run/podman/podman.sock".into())
        );
        assert_eq!(
            Endpoint::from_docker_host(Some("tcp://127.0.0.1:2375")).unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".into())
        );
        for bad in [
            "ssh://user@host",
            "npipe:////./pipe/docker_engine",
            "/var/run/docker.sock",
            "tcp://host",
            "tcp://:2375",
            "unix://relative.sock",
        ] {
            let err = Endpoint::from_docker_host(Some(bad)).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
