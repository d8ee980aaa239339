//! Every request a guest sends leaves through here, and from here through `airssys_web.outbound` in Python.
//!
//! There is one outbound policy for every world: the SSRF-proof checks and the HTTP client live in Python
//! (`Fetcher`), and both `airssys:web/outbound.fetch` and wasi:http's outgoing handlers (0.2's
//! `outgoing-handler`, 0.3's `client`) call it through [`fetch`]. This crate is built without
//! wasmtime-wasi-http's default sender, so it contains no code that could open a connection by itself.
//!
//! The route's deadline bounds each fetch: the time left is handed to Python, which cuts the request then.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::host::Settings;

/// Largest request body a guest may send through wasi:http (the Python fetcher has its own, equal cap).
const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;

pub struct FetchOk {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a fetch failed: `code` is a slug from Python (`denied`, `dns`, `refused`, `connect-timeout`,
/// `response-timeout`, `request-too-large`, `response-too-large`, `headers-too-large`, `deadline`, `error`),
/// or `host` when the host object itself failed.
#[derive(Debug, Clone)]
pub struct FetchErr {
    pub code: String,
    pub message: String,
}

impl FetchErr {
    fn new(code: &str, message: impl Into<String>) -> FetchErr {
        FetchErr {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Call `host.fetch(method, url, headers, body, remaining, depth)` (attaches to the interpreter; never holds a
/// lock). `depth` counts the component-to-component calls this request already went through.
pub fn fetch(
    settings: &Settings,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    remaining: f64,
    depth: u32,
) -> Result<FetchOk, FetchErr> {
    let Some(host) = settings.host.as_ref() else {
        return Err(FetchErr::new(
            "denied",
            "no outbound hosts are granted to this component",
        ));
    };
    if remaining <= 0.0 {
        return Err(FetchErr::new(
            "deadline",
            "the route's deadline passed before the request was sent",
        ));
    }
    Python::attach(|py| {
        let args = (
            method,
            url,
            headers.to_vec(),
            PyBytes::new(py, body),
            remaining,
            depth,
        );
        let out = host
            .call_method1(py, "fetch", args)
            .map_err(|e| FetchErr::new("host", format!("the host's fetch failed: {e}")))?;
        let out = out.bind(py);
        let tuple = out.cast::<PyTuple>().map_err(|_| {
            FetchErr::new(
                "host",
                "the host's fetch returned something other than a tuple",
            )
        })?;
        if tuple.len() == 3 {
            let status: u16 = tuple
                .get_item(0)
                .and_then(|v| v.extract())
                .map_err(bad_result)?;
            let headers: Vec<(String, String)> = tuple
                .get_item(1)
                .and_then(|v| v.extract())
                .map_err(bad_result)?;
            let body: Vec<u8> = tuple
                .get_item(2)
                .and_then(|v| v.extract())
                .map_err(bad_result)?;
            Ok(FetchOk {
                status,
                headers,
                body,
            })
        } else {
            let code: String = tuple
                .get_item(0)
                .and_then(|v| v.extract())
                .map_err(bad_result)?;
            let message: String = tuple
                .get_item(1)
                .and_then(|v| v.extract())
                .map_err(bad_result)?;
            Err(FetchErr { code, message })
        }
    })
}

fn bad_result(e: PyErr) -> FetchErr {
    FetchErr::new(
        "host",
        format!("the host's fetch returned a malformed result: {e}"),
    )
}

/// The wasi:http error a fetch failure stands for.
fn http_error(e: &FetchErr) -> HttpError {
    match e.code.as_str() {
        "denied" => HttpError::HttpRequestDenied,
        "dns" => HttpError::DnsError {
            rcode: Some(e.message.clone()),
            info_code: None,
        },
        "refused" => HttpError::ConnectionRefused,
        "connect-timeout" => HttpError::ConnectionTimeout,
        "response-timeout" | "deadline" => HttpError::HttpResponseTimeout,
        "request-too-large" => HttpError::HttpRequestBodySize(None),
        "response-too-large" => HttpError::HttpResponseBodySize(None),
        "headers-too-large" => HttpError::HttpResponseHeaderSectionSize(None),
        _ => HttpError::InternalError(Some(e.message.clone())),
    }
}

/// The wasi:http hooks of one Store: outgoing requests go to [`fetch`] on a blocking thread.
pub struct Outbound {
    settings: Arc<Settings>,
    runtime: tokio::runtime::Handle,
    pub deadline: Instant,
    pub depth: u32,
}

impl Outbound {
    pub fn new(
        settings: Arc<Settings>,
        runtime: tokio::runtime::Handle,
        deadline: Instant,
    ) -> Outbound {
        Outbound {
            settings,
            runtime,
            deadline,
            depth: 0,
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let settings = self.settings.clone();
        let runtime = self.runtime.clone();
        let deadline = self.deadline;
        let depth = self.depth;
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    return Err(match e.downcast::<HttpError>() {
                        Ok(err) => *err,
                        Err(_) => HttpError::HttpRequestBodySize(None),
                    });
                }
            };
            let method = parts.method.as_str().to_owned();
            let url = parts.uri.to_string();
            let mut headers = Vec::with_capacity(parts.headers.len());
            for (name, value) in &parts.headers {
                let Ok(text) = value.to_str() else {
                    return Err(HttpError::HttpRequestHeaderSize {
                        field_name: Some(name.as_str().to_owned()),
                        field_size: None,
                    });
                };
                headers.push((name.as_str().to_owned(), text.to_owned()));
            }
            let remaining = deadline
                .saturating_duration_since(Instant::now())
                .as_secs_f64();
            let result = runtime
                .spawn_blocking(move || {
                    fetch(&settings, &method, &url, &headers, &body, remaining, depth)
                })
                .await
                .map_err(|e| {
                    HttpError::InternalError(Some(format!("outbound worker failed: {e}")))
                })?;
            let ok = result.map_err(|e| http_error(&e))?;
            let mut response = http::Response::builder().status(ok.status);
            for (name, value) in &ok.headers {
                response = response.header(name.as_str(), value.as_str());
            }
            let body = Full::new(Bytes::from(ok.body))
                .map_err(|never| match never {})
                .boxed_unsync();
            let response = response.body(body).map_err(|e| {
                HttpError::InternalError(Some(format!("invalid upstream response: {e}")))
            })?;
            let done: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}
