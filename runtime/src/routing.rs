//! A thin wrapper over axum's `Router` that records every route it is given, so the
//! route-policy report can list them. Requests go straight to the axum router inside: the
//! wrapper costs nothing per request.
//!
//! Swap `axum::Router` and `axum::routing::{get, post, …}` for the ones here; handlers,
//! extractors, state and layers stay as they are.
//!
//! ```
//! use tokengate_runtime::routing::{Router, get};
//!
//! async fn health() -> &'static str { "ok" }
//!
//! let app: Router = Router::new().route("/health", get(health));
//! let report = app.report();
//! assert_eq!(report.routes[0].path, "/health");
//! let axum_router: axum::Router = app.into_axum();
//! ```

use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, OnceLock};

use axum::handler::Handler;
use axum::response::IntoResponse;
use axum::routing::Route;
use http::Request;
use tower::{Layer, Service};

use crate::gate::{ConfigError, TokenGate};
use crate::layer::PolicyLayer;
use crate::metadata::{ProtectedResource, ResourceMetadata, WELL_KNOWN_PATH};
use crate::policy::Policy;
use crate::registry::{self, HandlerRecord, HandlerStatus};
use crate::report::PolicyReport;
use crate::token::TokenType;

/// One handler as recorded: what the registry knows about it, or just its type name.
#[derive(Clone, Debug)]
pub(crate) struct RecordedHandler {
    pub(crate) method: &'static str,
    pub(crate) type_name: &'static str,
    pub(crate) record: Option<&'static HandlerRecord>,
}

/// A route as recorded, with the group policies that apply to it.
#[derive(Clone, Debug)]
pub(crate) struct RecordedRoute {
    pub(crate) path: String,
    pub(crate) handler: RecordedHandler,
    pub(crate) layers: Vec<Arc<Policy>>,
    /// An operation inside the route ([`Router::operation`]) and its policy.
    pub(crate) operation: Option<(String, Arc<Policy>)>,
}

impl RecordedRoute {
    /// The handler's own policy: the attribute's, or the operation's.
    pub(crate) fn handler_policy(&self) -> Option<&Policy> {
        if let Some((_, policy)) = &self.operation {
            return Some(policy);
        }
        self.handler.record.and_then(|r| match r.status {
            HandlerStatus::Guarded(p) => Some(p),
            HandlerStatus::Public => None,
        })
    }
}

/// axum's `MethodRouter`, plus a record of each handler it was given.
#[must_use]
pub struct MethodRouter<S = ()> {
    inner: axum::routing::MethodRouter<S>,
    handlers: Vec<RecordedHandler>,
}

impl<S> fmt::Debug for MethodRouter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodRouter")
            .field("handlers", &self.handlers)
            .finish()
    }
}

fn recorded<H: 'static>(method: &'static str) -> RecordedHandler {
    RecordedHandler {
        method,
        type_name: std::any::type_name::<H>(),
        record: registry::lookup::<H>(),
    }
}

/// A handler with a `#[rate_limit]` gets the layer that writes the rate-limit headers of the
/// requests it admits; others are left as they are.
fn with_rate_limit_headers<S>(
    router: axum::routing::MethodRouter<S>,
    handler: &RecordedHandler,
) -> axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let limited = handler.record.is_some_and(|r| match r.status {
        registry::HandlerStatus::Guarded(policy) => policy.has_rate_limits(),
        registry::HandlerStatus::Public => false,
    });
    if limited {
        router.layer(crate::rate_limit::headers_layer())
    } else {
        router
    }
}

macro_rules! method_fns {
    ($($name:ident => $method:literal),* $(,)?) => {
        $(
            #[doc = concat!("Routes `", $method, "` requests to `handler` (like `axum::routing::", stringify!($name), "`).")]
            pub fn $name<H, T, S>(handler: H) -> MethodRouter<S>
            where
                H: Handler<T, S>,
                T: 'static,
                S: Clone + Send + Sync + 'static,
            {
                let recorded = recorded::<H>($method);
                MethodRouter {
                    inner: with_rate_limit_headers(axum::routing::$name(handler), &recorded),
                    handlers: vec![recorded],
                }
            }
        )*

        impl<S: Clone + Send + Sync + 'static> MethodRouter<S> {
            $(
                #[doc = concat!("Adds a `", $method, "` handler.")]
                pub fn $name<H, T>(mut self, handler: H) -> MethodRouter<S>
                where
                    H: Handler<T, S>,
                    T: 'static,
                {
                    let recorded = recorded::<H>($method);
                    let added = with_rate_limit_headers(axum::routing::$name(handler), &recorded);
                    self.handlers.push(recorded);
                    MethodRouter { inner: self.inner.merge(added), handlers: self.handlers }
                }
            )*
        }
    };
}

method_fns! {
    get => "GET",
    post => "POST",
    put => "PUT",
    patch => "PATCH",
    delete => "DELETE",
    head => "HEAD",
    options => "OPTIONS",
}

/// Routes requests of every method to `handler` (like `axum::routing::any`).
pub fn any<H, T, S>(handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    let recorded = recorded::<H>("ANY");
    MethodRouter {
        inner: with_rate_limit_headers(axum::routing::any(handler), &recorded),
        handlers: vec![recorded],
    }
}

impl<S> MethodRouter<S> {
    /// The axum method router inside.
    pub fn into_axum(self) -> axum::routing::MethodRouter<S> {
        self.inner
    }
}

/// axum's `Router`, plus a record of its routes for the route-policy report.
#[must_use]
pub struct Router<S = ()> {
    inner: axum::Router<S>,
    routes: Vec<RecordedRoute>,
    /// The metadata documents served, written when the router is finished ([`Router::into_axum`]).
    documents: Vec<Document>,
}

/// A served metadata document: its resource, and the document once the routes are final.
#[derive(Clone, Debug)]
struct Document {
    resource: ProtectedResource,
    served: Arc<OnceLock<ResourceMetadata>>,
}

impl<S> fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router").field("routes", &self.routes).finish()
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Router<S> {
    fn default() -> Self {
        Router::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Router<S> {
    /// An empty router.
    pub fn new() -> Self {
        Router {
            inner: axum::Router::new(),
            routes: Vec::new(),
            documents: Vec::new(),
        }
    }

    /// Adds a route (see `axum::Router::route`).
    pub fn route(mut self, path: &str, method_router: MethodRouter<S>) -> Self {
        for handler in method_router.handlers {
            self.routes.push(RecordedRoute {
                path: path.to_owned(),
                handler,
                layers: Vec::new(),
                operation: None,
            });
        }
        self.inner = self.inner.route(path, method_router.inner);
        self
    }

    /// Adds a route built with plain `axum::routing` functions. Its handlers cannot be
    /// identified, so it is reported as one unguarded entry unless a group policy covers it.
    pub fn route_axum(mut self, path: &str, method_router: axum::routing::MethodRouter<S>) -> Self {
        self.routes.push(RecordedRoute {
            path: path.to_owned(),
            handler: RecordedHandler {
                method: "ANY",
                type_name: "(axum method router)",
                record: None,
            },
            layers: Vec::new(),
            operation: None,
        });
        self.inner = self.inner.route(path, method_router);
        self
    }

    /// Nests a router under `path` (see `axum::Router::nest`).
    pub fn nest(mut self, path: &str, router: Router<S>) -> Self {
        let prefix = path.trim_end_matches('/');
        for mut route in router.routes {
            route.path = if route.path == "/" {
                prefix.to_owned()
            } else {
                format!("{prefix}{}", route.path)
            };
            self.routes.push(route);
        }
        self.documents.extend(router.documents);
        self.inner = self.inner.nest(path, router.inner);
        self
    }

    /// Merges another router's routes (see `axum::Router::merge`).
    pub fn merge(mut self, other: Router<S>) -> Self {
        self.routes.extend(other.routes);
        self.documents.extend(other.documents);
        self.inner = self.inner.merge(other.inner);
        self
    }

    /// Applies a group policy to every route added so far (like `axum::Router::route_layer`:
    /// a request that matches no route still gets a 404, not a 401). Recorded for the report.
    pub fn guard(mut self, layer: PolicyLayer) -> Self {
        let policy = Arc::new(layer.policy().clone());
        for route in &mut self.routes {
            route.layers.push(Arc::clone(&policy));
        }
        self.inner = self.inner.route_layer(layer);
        self
    }

    /// Applies any tower layer (see `axum::Router::layer`). Not a policy: not in the report.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request<axum::body::Body>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<axum::body::Body>>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request<axum::body::Body>>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request<axum::body::Body>>>::Future: Send + 'static,
    {
        self.inner = self.inner.layer(layer);
        self
    }

    /// Sets the fallback handler (see `axum::Router::fallback`).
    pub fn fallback<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.inner = self.inner.fallback(handler);
        self
    }

    /// Provides the state (see `axum::Router::with_state`).
    pub fn with_state<S2>(self, state: S) -> Router<S2> {
        Router {
            inner: self.inner.with_state(state),
            routes: self.routes,
            documents: self.documents,
        }
    }

    /// The route-policy report of every recorded route.
    pub fn report(&self) -> PolicyReport {
        PolicyReport::from_routes(&self.routes)
    }

    /// Records an operation that the handler of `method` `path` dispatches on its own (an
    /// MCP tool, a JSON-RPC method, a GraphQL mutation), with the `policy` the application
    /// enforces for it (with [`TokenGate::authorize`], after the route's own guard): the
    /// report lists it as a guarded row of that route, named `operation`, and its scopes
    /// reach the [resource metadata](Router::resource_metadata). Routes nothing: the
    /// enforcement is the application's, and it should read the policy from where it passes
    /// it here, so that what is reported is what is enforced.
    ///
    /// ```
    /// use tokengate_runtime::routing::Router;
    /// use tokengate_runtime::{Policy, Requirement, RequirementKind, TokenTypes, Match};
    ///
    /// let write = Policy::accepting(TokenTypes::ANY)
    ///     .require(Requirement::new(RequirementKind::Scope, Match::All, ["users:write"]).unwrap());
    /// let app: Router = Router::new().operation(http::Method::POST, "/mcp", "tools/call delete_user", write);
    /// let row = &app.report().routes[0];
    /// assert_eq!((row.path.as_str(), row.operation.as_deref()), ("/mcp", Some("tools/call delete_user")));
    /// ```
    pub fn operation(mut self, method: http::Method, path: &str, operation: impl Into<String>, policy: Policy) -> Self {
        let operation = operation.into();
        self.routes.push(RecordedRoute {
            path: path.to_owned(),
            handler: RecordedHandler {
                method: static_method(&method),
                type_name: "(operation)",
                record: None,
            },
            layers: Vec::new(),
            operation: Some((operation, Arc::new(policy))),
        });
        self
    }

    /// The RFC 9728 Protected Resource Metadata of `resource`, with `scopes_supported` taken
    /// from the routes recorded so far (see [`metadata`](crate::metadata)).
    pub fn resource_metadata(&self, resource: &ProtectedResource) -> ResourceMetadata {
        resource.document(&self.report())
    }

    /// Serves [`Router::resource_metadata`] at `/.well-known/oauth-protected-resource` and, for
    /// a resource with a path, at [`ProtectedResource::metadata_path`] (RFC 9728 §3.1): public
    /// routes, reported as such. The document is written when the router is finished
    /// ([`Router::into_axum`]), so it lists the scopes of every route, added before this call
    /// or after it, nested or merged.
    pub fn serve_resource_metadata(mut self, resource: &ProtectedResource) -> Self {
        let served = Arc::new(OnceLock::new());
        self.documents.push(Document {
            resource: resource.clone(),
            served: Arc::clone(&served),
        });
        let mut paths = vec![resource.metadata_path()];
        if paths[0] != WELL_KNOWN_PATH {
            paths.push(WELL_KNOWN_PATH.to_owned());
        }
        paths.into_iter().fold(self, |router, path| {
            let served = Arc::clone(&served);
            let method_router = MethodRouter {
                inner: axum::routing::get(move || std::future::ready(serve_document(&served))),
                handlers: vec![RecordedHandler {
                    method: "GET",
                    type_name: "tokengate::metadata::ResourceMetadata",
                    record: Some(&METADATA_RECORD),
                }],
            };
            router.route(&path, method_router)
        })
    }

    /// Checks, at start-up, that every token type a route accepts has a verifier in `gate`; the
    /// error names each type without one and the routes that accept it.
    pub fn check_verifiers(&self, gate: &TokenGate) -> Result<(), ConfigError> {
        // Each token type without a verifier, and the routes accepting it, in the routes' order.
        let mut missing: Vec<(TokenType, Vec<String>)> = Vec::new();
        for route in &self.routes {
            let policies = route
                .handler_policy()
                .into_iter()
                .chain(route.layers.iter().map(|p| &**p));
            for types in policies.filter_map(|policy| gate.check_policy(policy).err()) {
                let name = format!("{} {}", route.handler.method, route.path);
                for token_type in types.iter() {
                    match missing.iter_mut().find(|(t, _)| *t == token_type) {
                        Some((_, routes)) if routes.contains(&name) => {}
                        Some((_, routes)) => routes.push(name.clone()),
                        None => missing.push((token_type, vec![name.clone()])),
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let problems: Vec<String> = missing
            .iter()
            .map(|(token_type, routes)| match routes.as_slice() {
                [one] => format!("no verifier for {token_type}, which {one} accepts"),
                many => format!(
                    "no verifier for {token_type}, which {} routes accept: {}",
                    many.len(),
                    many.join(", ")
                ),
            })
            .collect();
        Err(ConfigError::MissingVerifiers(format!(
            "{}; give the TokenGate a verifier for each with TokenGateBuilder::verifier (e.g. \
             .verifier(TokenType::{:?}, …)), or stop accepting the type on those routes",
            problems.join("; "),
            missing[0].0
        )))
    }

    /// The axum router, ready to serve (with its metadata documents written).
    pub fn into_axum(self) -> axum::Router<S> {
        self.finish()
    }
}

/// A metadata document as served: written by [`Router::into_axum`], which every way of
/// serving a tokengate router goes through.
fn serve_document(served: &OnceLock<ResourceMetadata>) -> axum::response::Response {
    match served.get() {
        Some(document) => document.clone().into_response(),
        None => http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The report's name of a method: the standard ones, else `ANY`.
fn static_method(method: &http::Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    KNOWN.into_iter().find(|m| *m == method.as_str()).unwrap_or("ANY")
}

/// The metadata routes' record: public, as the report shows them.
static METADATA_RECORD: HandlerRecord = HandlerRecord {
    name: "protected_resource_metadata",
    module_path: "tokengate::metadata",
    file: file!(),
    line: line!(),
    status: HandlerStatus::Public,
    type_id: None,
};

impl<S> Router<S> {
    /// The axum router, with the metadata documents written from the final routes.
    fn finish(self) -> axum::Router<S> {
        let report = PolicyReport::from_routes(&self.routes);
        for document in &self.documents {
            let _ = document.served.set(document.resource.document(&report));
        }
        self.inner
    }
}

impl<S> From<Router<S>> for axum::Router<S> {
    fn from(router: Router<S>) -> Self {
        router.finish()
    }
}
