//! Serving wasi:http components (0.2 `incoming-handler` and 0.3 `handler`) with wasmtime-wasi-http.
//!
//! The request comes from an [`HttpExchange`] (its body streams in as Python feeds it), the guest runs to the
//! end of its `handle`, and its response head and body go back into the exchange, waiting for Python when the
//! exchange's buffer is full. Everything runs on the calling thread (`block_on`), so a guest never occupies
//! one of the I/O runtime's threads. The route's deadline covers the guest's call, including the time it
//! spends waiting on host I/O (outbound requests, a slow client): past it the call is abandoned and the
//! instance is discarded.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;
use wasmtime_wasi_http::WasiHttpView;

use crate::errors::{Fault, Kind};
use crate::exchange::{HttpExchange, RequestBody, Shared};
use crate::host::{HostState, Settings};

pub type P2Proxy = wasmtime_wasi_http::p2::bindings::Proxy;
pub type P2Pre = wasmtime_wasi_http::p2::bindings::ProxyPre<HostState>;
pub type P3Service = wasmtime_wasi_http::p3::bindings::Service;
pub type P3Pre = wasmtime_wasi_http::p3::bindings::ServicePre<HostState>;

/// Build the `http::Request` a guest receives from what Python gave the exchange.
fn build_request(ex: &HttpExchange) -> Result<http::Request<RequestBody>, Fault> {
    let bad = |why: String| {
        Fault::new(
            Kind::Internal,
            format!("cannot build the guest's request: {why}"),
        )
    };
    let authority = ex
        .authority
        .clone()
        .or_else(|| {
            ex.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(b"host"))
                .and_then(|(_, v)| String::from_utf8(v.clone()).ok())
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let uri = http::Uri::builder()
        .scheme(ex.scheme.as_str())
        .authority(authority.as_str())
        .path_and_query(if ex.path_with_query.is_empty() {
            "/"
        } else {
            ex.path_with_query.as_str()
        })
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let method = http::Method::from_bytes(ex.method.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let mut req = http::Request::builder().method(method).uri(uri);
    if let Some(headers) = req.headers_mut() {
        for (k, v) in &ex.headers {
            // What ASGI servers pass on is valid HTTP; anything that is not cannot reach the guest.
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v)) {
                headers.append(name, value);
            }
        }
    }
    req.body(RequestBody::new(ex.shared.clone()))
        .map_err(|e| bad(e.to_string()))
}

/// Check the guest's response head; the pairs Python receives.
fn head_of(
    status: u16,
    headers: &http::HeaderMap,
    settings: &Settings,
) -> Result<Vec<(Bytes, Bytes)>, Fault> {
    if !(100..=599).contains(&status) {
        return Err(Fault::bad_response(format!(
            "{} answered with invalid status {status} (must be 100-599)",
            settings.tag
        )));
    }
    if headers.len() > settings.max_headers {
        return Err(Fault::bad_response(format!(
            "{} answered with {} headers, more than the {} allowed",
            settings.tag,
            headers.len(),
            settings.max_headers
        )));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        total += k.as_str().len() + v.len();
        out.push((
            Bytes::copy_from_slice(k.as_str().as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
        ));
    }
    if total > settings.max_header_bytes {
        return Err(Fault::bad_response(format!(
            "{} answered with {total} bytes of headers, more than the {} allowed",
            settings.tag, settings.max_header_bytes
        )));
    }
    Ok(out)
}

/// The status a client gets when the guest answers with an error-code instead of a response (by the name of
/// the error-code's case, as `Debug` prints it: the same in 0.2 and 0.3).
fn status_for(case: &str) -> u16 {
    match case {
        "DnsTimeout"
        | "ConnectionTimeout"
        | "ConnectionReadTimeout"
        | "ConnectionWriteTimeout"
        | "HttpResponseTimeout" => 504,
        "HttpRequestBodySize" => 413,
        "HttpRequestMethodInvalid" | "HttpRequestUriInvalid" => 400,
        c if ["Dns", "Destination", "Connection", "Tls", "HttpResponse"]
            .iter()
            .any(|p| c.starts_with(p)) =>
        {
            502
        }
        _ => 500,
    }
}

fn error_code_fault(settings: &Settings, debug: String) -> Fault {
    let case = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("")
        .to_owned();
    let mut f = Fault::new(
        Kind::ErrorCode,
        format!("{} answered with error-code {debug}", settings.tag),
    );
    f.status = Some(status_for(&case));
    f
}

/// Move the response body into the exchange, frame by frame, waiting while its buffer is full.
async fn pump<B>(body: B, shared: &Arc<Shared>, settings: &Settings) -> Result<(), Fault>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut body = body;
    loop {
        let frame = match body.frame().await {
            None => {
                shared.end_response(None);
                return Ok(());
            }
            Some(Err(e)) => {
                return Err(Fault::new(
                    Kind::Trap,
                    format!("{} sent an incomplete response body: {e}", settings.tag),
                ));
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                let mut chunk = Some(data);
                if !poll_fn(|cx| shared.poll_push(cx, &mut chunk)).await {
                    return Ok(()); // the client went away: stop reading; the guest's next write fails
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let pairs = trailers
                        .iter()
                        .map(|(k, v)| {
                            (
                                Bytes::copy_from_slice(k.as_str().as_bytes()),
                                Bytes::copy_from_slice(v.as_bytes()),
                            )
                        })
                        .collect();
                    shared.end_response(Some(pairs));
                    return Ok(());
                }
            }
        }
    }
}

async fn deliver<B>(
    response: http::Response<B>,
    shared: &Arc<Shared>,
    settings: &Settings,
) -> Result<(), Fault>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (parts, body) = response.into_parts();
    let head = head_of(parts.status.as_u16(), &parts.headers, settings)?;
    shared.set_head(parts.status.as_u16(), head);
    pump(body, shared, settings).await
}

fn deadline_fault(settings: &Settings) -> Fault {
    Fault::new(
        Kind::Timeout,
        format!(
            "{} exceeded its {}s deadline",
            settings.tag,
            settings.timeout.as_secs_f64()
        ),
    )
}

/// A response body that, once the guest's call has returned, fails instead of waiting: in 0.2 nothing runs
/// after `handle` returns, so a body still open then was leaked (or its writer trapped) and will never end.
struct AfterReturn<'a, B> {
    inner: B,
    returned: &'a AtomicBool,
}

impl<B> Body for AfterReturn<'_, B>
where
    B: Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Unpin,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending if self.returned.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                    "the guest returned without finishing the body".into(),
                )))))
            }
            other => other,
        }
    }
}

/// Serve one exchange with a 0.2 guest. `Err` is a failure of the guest (the store must be discarded when its
/// kind poisons); a failure of the response alone (bad head, cut body) is recorded in the exchange.
pub async fn serve_p2(
    store: &mut Store<HostState>,
    proxy: &P2Proxy,
    ex: &HttpExchange,
    budget: Duration,
) -> Result<(), wasmtime::Error> {
    let settings = store.data().settings.clone();
    let shared = ex.shared.clone();
    let request = build_request(ex).map_err(wasmtime::Error::new)?;
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let (incoming, out) = {
        let mut http = store.data_mut().http();
        (
            http.new_incoming_request(Scheme::Http, request)?,
            http.new_response_outparam(tx)?,
        )
    };
    let returned = AtomicBool::new(false);
    let call = tokio::time::timeout(
        budget,
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut *store, incoming, out),
    );
    let respond = async {
        // The head, unless the guest returns (or fails) without setting one: its outparam may then live on in
        // the store's table, so the channel alone would never say so.
        let head = poll_fn(|cx| match Pin::new(&mut rx).poll(cx) {
            Poll::Ready(r) => Poll::Ready(r.ok()),
            Poll::Pending if returned.load(Ordering::Acquire) => Poll::Ready(rx.try_recv().ok()),
            Poll::Pending => Poll::Pending,
        })
        .await;
        match head {
            Some(Ok(response)) => {
                let (parts, body) = response.into_parts();
                let body = AfterReturn {
                    inner: body,
                    returned: &returned,
                };
                deliver(http::Response::from_parts(parts, body), &shared, &settings).await
            }
            Some(Err(code)) => Err(error_code_fault(&settings, format!("{code:?}"))),
            None => Ok(()), // never set: the call's result says why
        }
    };
    let mut call = pin!(call);
    let mut respond = pin!(respond);
    let mut result = None;
    let mut delivered = None;
    poll_fn(|cx| {
        // The call first, so that `respond` sees `returned` in the same pass.
        if result.is_none() {
            if let Poll::Ready(r) = call.as_mut().poll(cx) {
                if !matches!(r, Ok(Ok(()))) {
                    shared.guest_failed();
                }
                returned.store(true, Ordering::Release);
                result = Some(r);
            }
        }
        if delivered.is_none() {
            if let Poll::Ready(d) = respond.as_mut().poll(cx) {
                delivered = Some(d);
            }
        }
        if result.is_some() && delivered.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    if let Some(Err(fault)) = delivered {
        record(&shared, fault);
    }
    match result {
        Some(Err(_)) => Err(wasmtime::Error::new(deadline_fault(&settings))),
        Some(Ok(r)) => r,
        None => Ok(()),
    }
}

/// Serve one exchange with a 0.3 guest (`wasi:http/handler`), inside the store's concurrent event loop so the
/// guest's tasks (its body writer among them) keep running while the body is delivered.
pub async fn serve_p3(
    store: &mut Store<HostState>,
    service: &P3Service,
    ex: &HttpExchange,
    budget: Duration,
) -> Result<(), wasmtime::Error> {
    let settings = store.data().settings.clone();
    let shared = ex.shared.clone();
    let request = build_request(ex).map_err(wasmtime::Error::new)?;
    let (request, io_result) = {
        let http = store.data_mut().http();
        wasmtime_wasi_http::p3::Request::from_http(http.hooks, request)
    };
    let run = store.run_concurrent(async |accessor| -> wasmtime::Result<()> {
        let response = match service.handle(accessor, request).await? {
            Ok(response) => response,
            Err(code) => {
                record(
                    &shared,
                    error_code_fault(&settings, format!("{:?}", P3Code(code))),
                );
                return Ok(());
            }
        };
        let response = accessor.with(|mut store| response.into_http(&mut store, io_result))?;
        let delivered = async {
            if let Err(fault) = deliver(response, &shared, &settings).await {
                record(&shared, fault);
            }
        };
        let idle = poll_fn(|cx| accessor.poll_no_interesting_tasks(cx));
        futures::join!(delivered, idle);
        Ok(())
    });
    match tokio::time::timeout(budget, run).await {
        Err(_) => Err(wasmtime::Error::new(deadline_fault(&settings))),
        Ok(r) => r?,
    }
}

struct P3Code(P3ErrorCode);

impl std::fmt::Debug for P3Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

fn record(shared: &Arc<Shared>, fault: Fault) {
    let mut s = shared.lock();
    if s.failure.is_none() {
        s.failure = Some(fault);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_statuses() {
        assert_eq!(status_for("ConnectionTimeout"), 504);
        assert_eq!(status_for("HttpResponseTimeout"), 504);
        assert_eq!(status_for("DnsError"), 502);
        assert_eq!(status_for("HttpResponseBodySize"), 502);
        assert_eq!(status_for("HttpRequestBodySize"), 413);
        assert_eq!(status_for("InternalError"), 500);
    }
}
