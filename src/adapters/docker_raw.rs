//! Raw JSON calls to the Engine API over its Unix socket, for the two calls where the typed
//! client would lose data: inspecting a container's configuration and creating its successor.
//! bollard's models follow the newest API and drop fields older Engines still use for user
//! settings (e.g. `Config.MacAddress` before API 1.44); copying the JSON as the Engine wrote
//! it keeps every field, known to this code or not.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

use crate::ports::RuntimeError;

/// The Engine's socket: `DOCKER_HOST=unix://…` when set, else the standard path.
pub fn socket_path(docker_host: Option<&str>) -> PathBuf {
    docker_host
        .and_then(|h| h.strip_prefix("unix://"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// One request; returns the status and the JSON body (`Null` when empty).
pub async fn call(
    socket: &Path,
    operation: &'static str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), RuntimeError> {
    call_with_headers(socket, operation, method, path, body, &[]).await
}

/// As [`call`], with extra request headers (e.g. `X-Registry-Auth`).
pub async fn call_with_headers(
    socket: &Path,
    operation: &'static str,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<(u16, Value), RuntimeError> {
    let unreachable = |e: &dyn std::fmt::Display| RuntimeError {
        operation,
        message: format!("{}: {e}", socket.display()),
        transient: true,
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(conn);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "docker")
        .header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| unreachable(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status().as_u16();
    let raw = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(&e))?
        .to_bytes();
    let value = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()))
    };
    if status >= 400 {
        let message = value["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        return Err(RuntimeError {
            operation,
            message: format!("HTTP {status}: {message}"),
            transient: false,
        });
    }
    Ok((status, value))
}
