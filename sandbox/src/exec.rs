//! `pods/exec`: runs a command as a local process, in the manner of kwok's ClusterExec, and
//! streams it over the Kubernetes WebSocket protocols `v5.channel.k8s.io` and
//! `v4.channel.k8s.io` (what the kube crate and kubectl 1.30+ speak; SPDY is not served).
//!
//! The sandbox runs no containers, so exec is off unless the server was given an exec root:
//! then a command for pod `ns/name` runs in `<root>/<ns>/<name>` (created on first use), with
//! the container's literal `env` values, `HOSTNAME`, `POD_NAME` and `POD_NAMESPACE` added to the
//! server's environment. The pod must exist and report `status.phase: Running`, and the
//! container must be one of its `spec.containers`, as on a real cluster. The command runs in a
//! process group of its own; a client that goes away kills the whole group.
//!
//! Frames: each binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr,
//! 3 error (a `Status` object when the command ends), 4 resize (ignored); v5 adds 255, whose
//! next byte names a stream the client closed (0: stdin reaches end of file).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::error::{ApiError, ApiResult};
use crate::http::{ResBody, Shared};

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

/// Returns `(namespace, pod)` when `path` is a pod's exec subresource.
pub(crate) fn target(path: &str) -> Option<(String, String)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, "exec"] => {
            Some(((*ns).to_owned(), (*name).to_owned()))
        }
        _ => None,
    }
}

/// What one exec call asks for.
#[derive(Debug)]
struct Call {
    namespace: String,
    pod: String,
    container: String,
    command: Vec<String>,
    stdin: bool,
    protocol: &'static str,
}

/// Answers an exec request: `101 Switching Protocols` and a task that runs the command, or a
/// `Status` error.
pub(crate) fn handle(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    namespace: String,
    pod: String,
) -> ApiResult<Response<ResBody>> {
    let Some(root) = shared.exec_root.clone() else {
        return Err(ApiError::forbidden(format!(
            "pods/exec is off in this sandbox (it runs no containers); start it with --exec-root DIR to run exec commands as local processes in DIR/{namespace}/{pod}"
        )));
    };
    let mut call = Call {
        namespace,
        pod,
        container: String::new(),
        command: Vec::new(),
        stdin: false,
        protocol: V4,
    };
    for pair in req.uri().query().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = crate::http::decode(value);
        match name {
            "command" => call.command.push(value),
            "container" => call.container = value,
            "stdin" => call.stdin = matches!(value.as_str(), "true" | "1"),
            _ => {}
        }
    }
    if call.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    // The pod first, so a client that falls back to SPDY still learns what is wrong.
    let env = check_pod(shared, &mut call)?;
    let header = |name: &str| {
        req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    if !header("upgrade").eq_ignore_ascii_case("websocket") {
        return Err(ApiError::bad_request(
            "pods/exec needs a WebSocket upgrade (protocol v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not served by the sandbox",
        ));
    }
    let key = header("sec-websocket-key");
    if key.is_empty() {
        return Err(ApiError::bad_request("the WebSocket upgrade has no Sec-WebSocket-Key"));
    }
    let offered = header("sec-websocket-protocol");
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    let protocol = [V5, V4].into_iter().find(|p| offered.contains(p)).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Sec-WebSocket-Protocol {:?} offers neither {V5} nor {V4}",
            offered.join(", ")
        ))
    })?;
    call.protocol = protocol;
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    for (name, value) in [
        ("upgrade", "websocket".to_owned()),
        ("connection", "Upgrade".to_owned()),
        ("sec-websocket-accept", derive_accept_key(key.as_bytes())),
        ("sec-websocket-protocol", protocol.to_owned()),
    ] {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                run(ws, &root, call, env).await;
            }
            Err(error) => tracing::debug!(%error, "exec upgrade failed"),
        }
    });
    Ok(response)
}

/// Checks the pod and container; returns the container's literal environment.
fn check_pod(shared: &Shared, call: &mut Call) -> ApiResult<Vec<(String, String)>> {
    let store = shared.store();
    let rt = store
        .registry
        .find("", "v1", "pods")
        .cloned()
        .ok_or_else(|| ApiError::internal("the sandbox has no pods resource"))?;
    let pod = crate::ops::get(&store, &rt, Some(&call.namespace), &call.pod)?;
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if phase != "Running" {
        return Err(ApiError::bad_request(format!(
            "pod {}/{} is not running (status.phase {phase:?}); exec needs a Running pod",
            call.namespace, call.pod
        )));
    }
    let containers: Vec<&Value> =
        pod["spec"]["containers"].as_array().map(|c| c.iter().collect()).unwrap_or_default();
    let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
    if call.container.is_empty() {
        match names.as_slice() {
            [only] => call.container = (*only).to_owned(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {}, choose one of: [{}]",
                    call.pod,
                    names.join(" ")
                )));
            }
        }
    }
    let container = containers
        .iter()
        .find(|c| c["name"].as_str() == Some(call.container.as_str()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "container {} is not valid for pod {}",
                call.container, call.pod
            ))
        })?;
    Ok(container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned())))
        .collect())
}

/// Runs the command and pumps its streams until it ends or the client goes away.
async fn run<S>(ws: WebSocketStream<S>, root: &Path, call: Call, env: Vec<(String, String)>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut incoming) = ws.split();
    let dir: PathBuf = root.join(&call.namespace).join(&call.pod);
    let spawned = match std::fs::create_dir_all(&dir) {
        Ok(()) => tokio::process::Command::new(&call.command[0])
            .args(&call.command[1..])
            .current_dir(&dir)
            .envs(env)
            .env("HOSTNAME", &call.pod)
            .env("POD_NAME", &call.pod)
            .env("POD_NAMESPACE", &call.namespace)
            .stdin(if call.stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn(),
        Err(error) => Err(error),
    };
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            let status = failure(
                "InternalError",
                &format!(
                    "failed to exec in container {}: {:?}: {error}",
                    call.container, call.command[0]
                ),
                None,
            );
            let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
            let _ = sink.send(normal_close()).await;
            return;
        }
    };
    // Until the command ends by itself, its whole process group dies with this session.
    let mut group = KillGroup(child.id());
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    for (channel, reader) in [
        (1u8, child.stdout.take().map(|r| Box::new(r) as Box<dyn AsyncReadUnpin>)),
        (2u8, child.stderr.take().map(|r| Box::new(r) as Box<dyn AsyncReadUnpin>)),
    ] {
        if let Some(reader) = reader {
            tokio::spawn(pump(reader, channel, tx.clone()));
        }
    }
    drop(tx);
    let mut stdin = child.stdin.take();
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        return; // The client is gone; kill_on_drop ends the command.
                    }
                }
                None => break,
            },
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(data))) => match (data.first(), data.get(1)) {
                    (Some(0), _) => {
                        if let Some(pipe) = stdin.as_mut()
                            && pipe.write_all(&data[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    (Some(255), Some(0)) if call.protocol == V5 => stdin = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    drop(stdin);
    let waited = loop {
        tokio::select! {
            waited = child.wait() => break waited,
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    };
    group.0 = None;
    let status = match waited {
        Ok(exit) if exit.success() => json!({"metadata": {}, "status": "Success"}),
        Ok(exit) => {
            use std::os::unix::process::ExitStatusExt;
            match (exit.code(), exit.signal()) {
                (Some(code), _) => failure(
                    "NonZeroExitCode",
                    &format!("command terminated with non-zero exit code: exit status {code}"),
                    Some(code),
                ),
                (None, signal) => failure(
                    "NonZeroExitCode",
                    &format!("command terminated by signal {}", signal.unwrap_or_default()),
                    Some(128 + signal.unwrap_or_default()),
                ),
            }
        }
        Err(error) => failure("InternalError", &format!("waiting for the command: {error}"), None),
    };
    let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
    let _ = sink.send(normal_close()).await;
}

/// Kills a process group (the command and everything it started) when dropped armed.
struct KillGroup(Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // tokio reaps the `kill` process once it ends.
            let _ = tokio::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
        }
    }
}

trait AsyncReadUnpin: tokio::io::AsyncRead + Unpin + Send {}
impl<T: tokio::io::AsyncRead + Unpin + Send> AsyncReadUnpin for T {}

async fn pump(mut reader: Box<dyn AsyncReadUnpin>, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A close frame with code 1000: client-go reads only a normal closure as the end of the
/// streams (a bare close, 1005, is an error to kubectl and hides the exit status).
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

/// Builds the `Status` a kubelet sends on the error channel when a command fails.
fn failure(reason: &str, message: &str, exit_code: Option<i32>) -> Value {
    let mut status = json!({
        "metadata": {}, "status": "Failure", "message": message, "reason": reason,
    });
    if let Some(code) = exit_code {
        status["details"] =
            json!({"causes": [{"reason": "ExitCode", "message": code.to_string()}]});
    }
    status
}
