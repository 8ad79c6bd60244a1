//! A fault-injecting HTTP proxy in front of an S3 server: each request takes the next fault of
//! a plan (answer 503 SlowDown, stall past the client's timeout, or reset the connection)
//! until the plan runs out, then requests pass through. It counts what it saw.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// What one request suffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// 503 SlowDown, as S3 answers when throttling.
    Unavailable,
    /// No answer for this long.
    Stall(Duration),
    /// The connection is closed without an answer.
    Reset,
}

/// The proxy's shared state.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    faults: Mutex<VecDeque<Fault>>,
    /// Requests seen.
    pub(crate) requests: AtomicU64,
    /// Faults injected.
    pub(crate) injected: AtomicU64,
}

impl Plan {
    /// Queues faults for the next requests.
    pub(crate) fn add(&self, faults: impl IntoIterator<Item = Fault>) {
        self.faults.lock().expect("plan").extend(faults);
    }

    /// Faults still queued.
    pub(crate) fn pending(&self) -> usize {
        self.faults.lock().expect("plan").len()
    }
}

/// Starts the proxy in front of 127.0.0.1:`upstream`; returns its port and plan.
pub(crate) async fn start(upstream: u16) -> (u16, Arc<Plan>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let plan = Arc::new(Plan::default());
    let shared = plan.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let plan = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(request, upstream, plan.clone()));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (port, plan)
}

async fn handle(
    request: Request<Incoming>,
    upstream: u16,
    plan: Arc<Plan>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    plan.requests.fetch_add(1, Ordering::SeqCst);
    let fault = plan.faults.lock().expect("plan").pop_front();
    if fault.is_some() {
        plan.injected.fetch_add(1, Ordering::SeqCst);
    }
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    match fault {
        Some(Fault::Unavailable) => {
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header("content-type", "application/xml")
                .body(Full::new(Bytes::from(xml)))
                .map_err(std::io::Error::other);
        }
        Some(Fault::Stall(how_long)) => tokio::time::sleep(how_long).await,
        Some(Fault::Reset) => return Err(std::io::Error::other("reset by the fault plan")),
        None => {}
    }
    let stream = TcpStream::connect(("127.0.0.1", upstream)).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let forwarded = Request::from_parts(parts, Full::new(body));
    let response = sender.send_request(forwarded).await.map_err(std::io::Error::other)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
