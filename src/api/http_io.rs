//! The HTTP server's connection layer: [`serve`] assembles the server (in place of actix-web's
//! `HttpServer`) around [`JsonErrorStream`], the I/O wrapper that gives the error responses
//! actix-http writes by itself — before any middleware runs, with empty bodies — the service's
//! `{"errors":[{code,message}]}` body: 400 (unparsable request, e.g. a URI longer than 65534
//! characters), 408 (request head too slow), 431 (more than 96 headers or a head over 128 KiB)
//! and 500 (dispatcher failure).
//!
//! Recognising them relies on facts: actix-http writes these heads (with `content-length: 0`)
//! as the last bytes of the connection, closing it afterwards; the app's own error responses
//! always carry a non-empty JSON body; and JSON never contains a raw CRLF, so no body of ours
//! can end like a head. A write that *ends* with such a head is therefore one of them.

use std::future::poll_fn;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_http::{body::MessageBody, error::DispatchError, HttpService, Request, Response};
use actix_service::{map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt as _};
use actix_web::dev::{fn_service, AppConfig, Server, Service};
use actix_web::rt::net::TcpStream;
use actix_web::rt::time::timeout;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a client may take to send a request head (actix-web's default, answered by 408).
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle keep-alive connection stays open (actix-web's default).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// How long our own HTTP clients (the loader, the benchmark) keep an idle connection: well
/// under [`KEEP_ALIVE`], so they never reuse one the server is closing at that moment.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a closing connection may take to deliver its last bytes (actix-web's default).
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a graceful shutdown waits for workers to finish their requests.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// Builds and starts the HTTP/1 server on `listener`, as `HttpServer::new(app).listen(..)
/// .shutdown_timeout(10).run()` does, but over [`JsonErrorStream`]. `workers == 0` keeps
/// actix's default (one per CPU). SIGTERM stops gracefully, SIGINT (Ctrl-C) and SIGQUIT at
/// once, as with `HttpServer`; `Server::handle()` stops it from code. Call inside an actix
/// system.
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    workers: usize,
    client_request_timeout: Duration,
    app: F,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let mut builder = Server::build().shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
    if workers > 0 {
        builder = builder.workers(workers);
    }
    let shutdown = builder.graceful_shutdown_signal();
    let name = format!("stockbatch-http-{addr}");
    builder
        .listen(name, listener, move || {
            let shutdown = shutdown.clone();
            let app = app()
                .into_factory()
                .map_err(|err| err.into().error_response());
            fn_service(|stream: TcpStream| async move {
                let _ = stream.set_nodelay(true);
                let peer = stream.peer_addr().ok();
                Ok::<_, DispatchError>((JsonErrorStream::new(stream), peer))
            })
            .and_then(
                HttpService::build()
                    // Lets keep-alive connections close when a graceful shutdown starts.
                    .graceful_shutdown_signal(move || {
                        let shutdown = shutdown.clone();
                        async move { shutdown.notified().await }
                    })
                    .keep_alive(KEEP_ALIVE)
                    .client_request_timeout(client_request_timeout)
                    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                    .local_addr(addr)
                    .h1(map_config(app, |_| AppConfig::default())),
            )
        })
        .map(|builder| builder.run())
}

/// A stream (a [`TcpStream`] in [`serve`]) that passes reads and writes through, except that
/// one of actix-http's own bodiless error heads, when a write ends with it, goes out with the
/// JSON errors body instead.
pub struct JsonErrorStream<S: AsyncWrite + Unpin + Send + 'static = TcpStream> {
    /// `None` only once [`Drop`] has handed the stream to a task finishing `unsent`.
    stream: Option<S>,
    /// The end of a rewritten response, counted as written but not yet taken by the socket.
    unsent: Vec<u8>,
}

impl<S: AsyncWrite + Unpin + Send + 'static> JsonErrorStream<S> {
    /// Wraps an accepted connection.
    pub fn new(stream: S) -> Self {
        JsonErrorStream {
            stream: Some(stream),
            unsent: Vec::new(),
        }
    }

    fn stream(&mut self) -> Pin<&mut S> {
        Pin::new(
            self.stream
                .as_mut()
                .expect("the stream is only taken on drop"),
        )
    }

    fn poll_send_unsent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = self
            .stream
            .as_mut()
            .expect("the stream is only taken on drop");
        poll_write_all(stream, &mut self.unsent, cx)
    }
}

fn poll_write_all<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !bytes.is_empty() {
        match ready!(Pin::new(&mut *writer).poll_write(cx, bytes))? {
            0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            n => drop(bytes.drain(..n)),
        }
    }
    Poll::Ready(Ok(()))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for JsonErrorStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin + Send + 'static> AsyncWrite for JsonErrorStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_send_unsent(cx))?;
        let Some((start, response)) = json_error_response(buf) else {
            return self.stream().poll_write(cx, buf);
        };
        if start > 0 {
            // Earlier responses go out as they are; the caller then writes the head alone.
            return self.stream().poll_write(cx, &buf[..start]);
        }
        let taken = ready!(self.stream().poll_write(cx, &response))?;
        if taken == 0 {
            return Poll::Ready(Ok(0));
        }
        // Rarely the socket takes part of it: the rest goes before anything else, and from
        // `Drop` if actix-http lets go of the connection first (it does not wait for a flush).
        self.unsent = response[taken..].to_vec();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send_unsent(cx))?;
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send_unsent(cx))?;
        self.stream().poll_shutdown(cx)
    }
}

impl<S: AsyncWrite + Unpin + Send + 'static> Drop for JsonErrorStream<S> {
    /// Sends what is left of a rewritten response, for at most the disconnect timeout.
    fn drop(&mut self) {
        if self.unsent.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (mut stream, mut unsent) = (self.stream.take(), std::mem::take(&mut self.unsent));
        runtime.spawn(timeout(
            CLIENT_DISCONNECT_TIMEOUT,
            poll_fn(move |cx| match stream.as_mut() {
                Some(stream) => poll_write_all(stream, &mut unsent, cx),
                None => Poll::Ready(Ok(())),
            }),
        ));
    }
}

/// The error responses actix-http writes itself, with the message each is given.
const OWN_ERRORS: [(&str, &str); 4] = [
    (
        "400",
        "the request could not be parsed as HTTP/1.1 (for example, its URI is longer than \
         65534 characters, or a header is malformed)",
    ),
    ("408", "the request head did not arrive in time"),
    (
        "431",
        "the request headers are too large: at most 96 headers and 128 KiB in all",
    ),
    ("500", "internal server error"),
];

/// Headers the rewritten response sets, replacing any of the original.
const SET_HEADERS: [&str; 4] = [
    "content-length",
    "content-type",
    "x-content-type-options",
    "cache-control",
];

/// The longest error head actix-http writes, with room to spare (it is under 150 bytes).
const MAX_OWN_HEAD: usize = 512;

/// When `buf` ends with one of actix-http's own bodiless error heads (maybe after earlier,
/// pipelined responses), returns where that head starts and the response to send instead:
/// the same status line and other headers (`date`, `connection`) with the JSON errors body.
pub fn json_error_response(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    let head_end = buf.len().checked_sub(4)?;
    if &buf[head_end..] != b"\r\n\r\n" {
        return None;
    }
    let search_from = buf.len().saturating_sub(MAX_OWN_HEAD);
    let start = search_from
        + buf[search_from..]
            .windows(9)
            .rposition(is_status_line_start)?;
    let mut lines = buf[start..head_end]
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let status_line = lines.next()?;
    let headers: Vec<&[u8]> = lines.collect();
    let (code, message) = OWN_ERRORS
        .into_iter()
        .find(|(code, _)| status_line.get(9..12) == Some(code.as_bytes()))?;
    let no_body = |h: &&[u8]| h.eq_ignore_ascii_case(b"content-length: 0");
    // A blank line inside means the "head" is the end of some body.
    if headers.iter().any(|h| h.is_empty()) || !headers.iter().any(no_body) {
        return None;
    }

    let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] }).to_string();
    let mut response = Vec::with_capacity(buf.len() - start + 160 + body.len());
    let kept = headers.iter().filter(|h| !is_set_header(h));
    for line in std::iter::once(&status_line).chain(kept) {
        response.extend_from_slice(line);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(
        format!(
            "content-length: {}\r\ncontent-type: application/json\r\n\
             x-content-type-options: nosniff\r\ncache-control: no-store\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    Some((start, response))
}

fn is_status_line_start(window: &[u8]) -> bool {
    matches!(
        window,
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0' | b'1', b' ']
    )
}

fn header_name(header: &[u8]) -> &[u8] {
    header.split(|&b| b == b':').next().unwrap_or_default()
}

fn is_set_header(header: &[u8]) -> bool {
    SET_HEADERS
        .iter()
        .any(|set| header_name(header).eq_ignore_ascii_case(set.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const DATE: &str = "date: Mon, 01 Jan 2024 00:00:00 GMT\r\n";
    const EARLIER: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}\
                           HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
                           HTTP/1.1 204 No Content\r\n\r\n";

    fn head(status: &str, headers: &str) -> String {
        format!("HTTP/1.1 {status}\r\n{headers}\r\n")
    }

    fn rewritten(buf: &str) -> (usize, String) {
        let (start, response) = json_error_response(buf.as_bytes()).expect("rewritten");
        (start, String::from_utf8(response).unwrap())
    }

    fn body_of(response: &str) -> serde_json::Value {
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "));
        assert_eq!(length.unwrap().parse::<usize>().unwrap(), body.len());
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn gives_each_own_error_the_json_body_and_keeps_its_headers() {
        for (status, message) in [
            ("400 Bad Request", "could not be parsed"),
            ("408 Request Timeout", "did not arrive in time"),
            ("431 Request Header Fields Too Large", "at most 96 headers"),
            ("500 Internal Server Error", "internal server error"),
        ] {
            let headers = format!("content-length: 0\r\nconnection: close\r\n{DATE}");
            let (start, response) = rewritten(&head(status, &headers));
            assert_eq!(start, 0);
            let body = body_of(&response);
            let expected_head = format!(
                "HTTP/1.1 {status}\r\nconnection: close\r\n{DATE}content-length: {}\r\n\
                 content-type: application/json\r\nx-content-type-options: nosniff\r\n\
                 cache-control: no-store\r\n\r\n",
                body.to_string().len()
            );
            assert!(response.starts_with(&expected_head), "{response}");
            assert_eq!(body["errors"][0]["code"], &status[..3]);
            let text = body["errors"][0]["message"].as_str().unwrap();
            assert!(text.contains(message), "{text}");
        }
    }

    #[test]
    fn finds_the_head_after_earlier_pipelined_responses() {
        let error = head("400 Bad Request", &format!("content-length: 0\r\n{DATE}"));
        let (start, response) = rewritten(&format!("{EARLIER}{error}"));
        assert_eq!(start, EARLIER.len());
        assert!(response.starts_with(&format!("HTTP/1.1 400 Bad Request\r\n{DATE}")));
        assert_eq!(body_of(&response)["errors"][0]["code"], "400");
    }

    #[test]
    fn accepts_an_http_1_0_status_line() {
        let (_, response) = rewritten("HTTP/1.0 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        assert!(response.starts_with("HTTP/1.0 400 Bad Request\r\ncontent-length: "));
    }

    #[test]
    fn leaves_everything_else_alone() {
        let json = r#"{"errors":[{"code":"400","message":"invalid"}]}"#;
        for buf in [
            String::new(),
            "HTTP/1.1 400 Bad Request\r\n".to_owned(),
            // The app's own errors have JSON bodies; answering HEAD, they keep their length.
            head("400 Bad Request", "content-length: 47\r\n") + json,
            head(
                "400 Bad Request",
                "content-length: 47\r\ncontent-type: application/json\r\n",
            ),
            head("404 Not Found", "content-length: 0\r\n"),
            head("204 No Content", DATE),
            head("200 OK", "content-length: 0\r\n"),
            head("200 OK", "transfer-encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n",
            // Something after an error head: it is not the last thing on the connection.
            head("400 Bad Request", "content-length: 0\r\n") + "HTTP/1.1 200 OK\r\n\r\n",
            head("400 Bad Request", "content-length: 0\r\n") + "0\r\n\r\n",
            // A body that merely ends like a bodiless head.
            head("200 OK", "content-length: 30\r\n") + "HTTP/1.1 400 Bad Request\r\n\r\n\r\n",
        ] {
            assert_eq!(json_error_response(buf.as_bytes()), None, "{buf:?}");
        }
    }

    /// A socket taking at most `chunk` bytes a write and refusing every other write.
    struct Trickle {
        taken: Arc<Mutex<Vec<u8>>>,
        chunk: usize,
        refuse: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.refuse = !self.refuse;
            if self.refuse {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(self.chunk);
            self.taken.lock().unwrap().extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Writes `buf` the way actix-http's dispatcher does, retrying the rest after each
    /// partial write; returns the polls it took.
    fn write_like_actix(stream: &mut JsonErrorStream<Trickle>, buf: &[u8]) -> usize {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (mut written, mut polls) = (0, 0);
        while written < buf.len() {
            polls += 1;
            if let Poll::Ready(n) = Pin::new(&mut *stream).poll_write(&mut cx, &buf[written..]) {
                written += n.unwrap();
            }
        }
        polls
    }

    fn trickle(chunk: usize) -> (JsonErrorStream<Trickle>, Arc<Mutex<Vec<u8>>>) {
        let taken = Arc::new(Mutex::new(Vec::new()));
        let socket = Trickle {
            taken: taken.clone(),
            chunk,
            refuse: false,
        };
        (JsonErrorStream::new(socket), taken)
    }

    #[test]
    fn sends_earlier_responses_then_the_rewritten_head_through_partial_writes() {
        let error = head(
            "431 Request Header Fields Too Large",
            "content-length: 0\r\n",
        );
        let buf = format!("{EARLIER}{error}");
        let (_, response) = rewritten(&error);
        let (mut stream, taken) = trickle(7);
        assert!(write_like_actix(&mut stream, buf.as_bytes()) > buf.len() / 7);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while Pin::new(&mut stream).poll_flush(&mut cx).is_pending() {}
        assert_eq!(
            *taken.lock().unwrap(),
            format!("{EARLIER}{response}").into_bytes()
        );
    }

    #[test]
    fn passes_normal_writes_through() {
        let (mut stream, taken) = trickle(usize::MAX);
        write_like_actix(&mut stream, EARLIER.as_bytes());
        assert_eq!(*taken.lock().unwrap(), EARLIER.as_bytes());
    }

    #[test]
    fn finishes_a_rewritten_response_after_being_dropped() {
        let error = head("400 Bad Request", "content-length: 0\r\n");
        let (_, response) = rewritten(&error);
        actix_web::rt::System::new().block_on(async {
            let (mut stream, taken) = trickle(7);
            write_like_actix(&mut stream, error.as_bytes());
            assert_eq!(taken.lock().unwrap().len(), 7, "the socket took part of it");
            drop(stream);
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(*taken.lock().unwrap(), response.as_bytes());
        });
    }
}
