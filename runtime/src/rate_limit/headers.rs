//! The IETF rate-limit headers (draft-ietf-httpapi-ratelimit-headers) on every answer of a
//! limited route: the guard leaves the status of its check in a [`Slot`] the layer put in the
//! request, and the layer writes the headers on the response. A refusal (`429`) writes its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::Response;
use http::{HeaderMap, HeaderValue, Request};
use tower::{Layer, Service};

use super::RateStatus;

/// Where a guard leaves the status of a request's rate-limit check.
#[derive(Clone, Default)]
pub(crate) struct Slot(Arc<Mutex<Option<RateStatus>>>);

impl Slot {
    pub(crate) fn set(&self, status: RateStatus) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
    }

    fn take(&self) -> Option<RateStatus> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Whole seconds, rounded up (a client that waits that long is admitted).
fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Writes `RateLimit-Policy` and `RateLimit` for `status` (and `Retry-After` when refused).
pub(crate) fn render_headers(headers: &mut HeaderMap, status: &RateStatus) {
    let name = status.rate.to_string();
    let policy = format!("\"{name}\";q={};w={}", status.rate.count(), status.rate.period_secs());
    let current = format!("\"{name}\";r={};t={}", status.remaining, secs(status.reset));
    for (header, value) in [("ratelimit-policy", policy), ("ratelimit", current)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header, value);
        }
    }
    if !status.allowed {
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(secs(status.retry_after).max(1)),
        );
    }
}

/// The layer that writes the rate-limit headers of admitted requests. tokengate's
/// [`routing`](crate::routing) functions put it around every handler that has a
/// `#[rate_limit]`; put it yourself around such handlers on a plain axum router.
pub fn headers_layer() -> RateLimitHeadersLayer {
    RateLimitHeadersLayer
}

/// See [`headers_layer`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RateLimitHeadersLayer;

impl<S> Layer<S> for RateLimitHeadersLayer {
    type Service = RateLimitHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitHeaders { inner }
    }
}

/// The service of [`RateLimitHeadersLayer`].
#[derive(Clone, Debug)]
pub struct RateLimitHeaders<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for RateLimitHeaders<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let slot = Slot::default();
        request.extensions_mut().insert(slot.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(status) = slot.take() {
                render_headers(response.headers_mut(), &status);
            }
            Ok(response)
        })
    }
}
