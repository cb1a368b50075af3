//! A stand-in for the Lambda Runtime API (2018-06-01), enough to run the real
//! bootstrap as Lambda does: it polls `/next`, and posts a response or an error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex};

/// What the function answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response(Value),
    Error { error_type: String, error_message: String },
    /// The function posted an init error or exited during INIT.
    InitError(String),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>;

pub struct RuntimeApi {
    pub address: String,
    queue: mpsc::Sender<(String, String, u128)>,
    pending: Pending,
    init_error: Arc<Mutex<Option<oneshot::Sender<Answer>>>>,
    counter: std::sync::atomic::AtomicU64,
    /// Invocations handed out and not answered yet, now and at most.
    busy: Arc<(AtomicUsize, AtomicUsize)>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (queue, rx) = mpsc::channel::<(String, String, u128)>(64);
        let rx = Arc::new(Mutex::new(rx));
        let pending: Pending = Arc::default();
        let init_error: Arc<Mutex<Option<oneshot::Sender<Answer>>>> = Arc::default();
        let busy: Arc<(AtomicUsize, AtomicUsize)> = Arc::default();
        {
            let (pending, init_error, busy) = (pending.clone(), init_error.clone(), busy.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, rx.clone(), pending.clone(), init_error.clone(), busy.clone()));
                }
            });
        }
        RuntimeApi { address, queue, pending, init_error, counter: Default::default(), busy }
    }

    /// Invokes the function with `event`, as Lambda does with a 30-second timeout.
    pub async fn invoke(&self, event: &Value) -> Answer {
        self.invoke_raw(&event.to_string(), Duration::from_secs(30)).await
    }

    /// Invokes the function with a raw payload and the given function timeout, and
    /// waits (at most 60 s) for its answer.
    pub async fn invoke_raw(&self, payload: &str, timeout: Duration) -> Answer {
        let id = format!("req-{}", self.counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id.clone(), tx);
        let deadline = (SystemTime::now() + timeout).duration_since(UNIX_EPOCH).unwrap().as_millis();
        self.queue.send((id, payload.to_owned(), deadline)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(60), rx).await.expect("the function answered in time").unwrap()
    }

    /// The most invocations the function had under way at once.
    pub fn most_at_once(&self) -> usize {
        self.busy.1.load(Ordering::SeqCst)
    }

    /// Resolves when the function reports an INIT error.
    pub async fn init_error(&self) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        *self.init_error.lock().await = Some(tx);
        rx
    }
}

async fn serve(
    stream: TcpStream,
    queue: Arc<Mutex<mpsc::Receiver<(String, String, u128)>>>,
    pending: Pending,
    init_error: Arc<Mutex<Option<oneshot::Sender<Answer>>>>,
    busy: Arc<(AtomicUsize, AtomicUsize)>,
) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();

        let (status, headers, reply) = if method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
            let Some((id, event, deadline)) = queue.lock().await.recv().await else { return };
            let now = busy.0.fetch_add(1, Ordering::SeqCst) + 1;
            busy.1.fetch_max(now, Ordering::SeqCst);
            let headers = format!(
                "Lambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:eu-west-1:123456789012:function:ecr-retag\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n"
            );
            ("200 OK", headers, event)
        } else if let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") {
            let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
            let answer = match kind {
                "response" => Answer::Response(serde_json::from_str(&body).unwrap_or(Value::String(body.clone()))),
                _ => {
                    let v: Value = serde_json::from_str(&body).unwrap_or_default();
                    Answer::Error {
                        error_type: v["errorType"].as_str().unwrap_or_default().to_owned(),
                        error_message: v["errorMessage"].as_str().unwrap_or_default().to_owned(),
                    }
                }
            };
            busy.0.fetch_sub(1, Ordering::SeqCst);
            if let Some(tx) = pending.lock().await.remove(id) {
                let _ = tx.send(answer);
            }
            ("202 Accepted", String::new(), "{}".to_owned())
        } else if path == "/2018-06-01/runtime/init/error" {
            if let Some(tx) = init_error.lock().await.take() {
                let _ = tx.send(Answer::InitError(body));
            }
            ("202 Accepted", String::new(), "{}".to_owned())
        } else {
            ("404 Not Found", String::new(), "{}".to_owned())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if stream.get_mut().write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
