//! The route-policy report: every route, what it accepts, what it requires, what is open.
//!
//! It comes from the same declarations the guards enforce — the attributes' registry and the
//! group policies applied through [`routing::Router::guard`](crate::routing::Router::guard) —
//! so report and enforcement cannot drift. Four formats: a Markdown table for people, JSON
//! for tools (schema: `docs/policy-report.schema.json`, `schema_version` 1), an OpenAPI
//! 3.1 fragment to merge into API docs, and a self-contained HTML page (a matrix of routes ×
//! token types with a filter box, `report/html.rs`). [`PolicyReport::deny_unguarded`] is the
//! CI mode.
//!
//! ```
//! use tokengate_runtime::routing::{Router, get};
//! use tokengate_runtime::report::Format;
//!
//! async fn open() -> &'static str { "no policy here" }
//!
//! let app: Router = Router::new().route("/open", get(open));
//! let report = app.report();
//! assert!(report.render(Format::Markdown).contains("| GET | `/open` | **unguarded** |"));
//! let err = report.deny_unguarded().unwrap_err();
//! assert!(err.contains("GET /open"));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Value, json};
use tokengate_core::reverification::Reverification;

use crate::binding::{BINDABLE, Binding};
use crate::policy::{Match, Policy, Requirement, RequirementKind};
use crate::registry::HandlerStatus;
use crate::routing::RecordedRoute;
use crate::token::{TokenType, TokenTypes};

mod html;

/// The version of the JSON schema; bumped only on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Whether a route is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteStatus {
    /// A handler policy or a group policy applies.
    Guarded,
    /// Marked `#[public]`: intentionally open.
    Public,
    /// No policy at all.
    Unguarded,
}

/// Where a handler is defined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceLocation {
    /// Source file, as `file!()` gives it.
    pub file: String,
    /// Line of the handler's `fn`.
    pub line: u32,
}

/// One requirement, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequirementReport {
    /// `scope`, `role`, `permission` or `condition`.
    pub kind: RequirementKind,
    /// `all` or `any`.
    #[serde(rename = "match")]
    pub matching: Match,
    /// The required values (for a condition: the predicate's path, e.g. `crate::auth::is_owner`).
    pub values: Vec<String>,
    /// The token types it applies to (all the route accepts when the declaration named none).
    pub applies_to: TokenTypes,
}

/// One policy (a handler's or a group layer's), as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyView {
    /// Accepted token types.
    pub accepts: TokenTypes,
    /// Requirements, all of which must hold.
    pub requirements: Vec<RequirementReport>,
    /// Whether a request without credentials is admitted anonymously.
    pub optional: bool,
    /// The bindings required of the accepted tokens that can be bound: `dpop`, `mtls`.
    pub sender_constraints: Binding,
}

impl PolicyView {
    fn of(policy: &Policy) -> PolicyView {
        PolicyView {
            optional: policy.is_optional(),
            sender_constraints: policy.binding(),
            accepts: policy.accepts(),
            requirements: policy
                .requirements()
                .iter()
                .map(|r| requirement_report(r, policy.accepts()))
                .collect(),
        }
    }
}

fn requirement_report(r: &Requirement, accepts: TokenTypes) -> RequirementReport {
    RequirementReport {
        kind: r.kind(),
        matching: r.matching(),
        values: r.values().map(str::to_owned).collect(),
        applies_to: if r.applies_to().is_empty() {
            accepts
        } else {
            r.applies_to().intersection(accepts)
        },
    }
}

/// One route (one method on one path), as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteReport {
    /// HTTP method (`GET`, …; `ANY` for a catch-all).
    pub method: String,
    /// Full path, after nesting.
    pub path: String,
    /// The handler's module path, e.g. `api_server::create_user`.
    pub handler: String,
    /// Where the handler is defined, when an attribute recorded it.
    pub source: Option<SourceLocation>,
    /// Guarded, public or unguarded.
    pub status: RouteStatus,
    /// The token types that can get through every policy on the route (empty when open).
    pub accepts: TokenTypes,
    /// Every requirement on the route: the handler's and the group layers'.
    pub requirements: Vec<RequirementReport>,
    /// Whether a request without credentials gets through (every policy on the route is
    /// optional).
    pub optional: bool,
    /// The bindings the route requires (`dpop`, `mtls`), of the accepted types in
    /// `sender_constrained_types`.
    pub sender_constraints: Binding,
    /// The accepted types the sender constraints apply to (those that can be bound).
    pub sender_constrained_types: TokenTypes,
    /// The handler's own policy, if it has one.
    pub handler_policy: Option<PolicyView>,
    /// The group policies that also apply, outermost last.
    pub layers: Vec<PolicyView>,
    /// For an operation inside a route ([`Router::operation`](crate::routing::Router::operation)):
    /// its name (also the `handler`); the policy is the `handler_policy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// Every route of an application and its policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyReport {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The routes, in the order they were added.
    pub routes: Vec<RouteReport>,
}

/// A report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A Markdown table.
    Markdown,
    /// JSON following `docs/policy-report.schema.json`.
    Json,
    /// An OpenAPI 3.1 fragment: security schemes and per-operation requirements.
    OpenApi,
    /// A self-contained HTML page: routes × token types, with a filter box.
    Html,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "markdown" | "md" => Ok(Format::Markdown),
            "json" => Ok(Format::Json),
            "openapi" => Ok(Format::OpenApi),
            "html" => Ok(Format::Html),
            other => Err(format!(
                "unknown report format `{other}`; use markdown, json or openapi, or html for a self-contained page"
            )),
        }
    }
}

impl PolicyReport {
    pub(crate) fn from_routes(routes: &[RecordedRoute]) -> PolicyReport {
        PolicyReport {
            schema_version: SCHEMA_VERSION,
            routes: routes.iter().map(RouteReport::of).collect(),
        }
    }

    /// The routes with no policy that are not `#[public]`.
    pub fn unguarded(&self) -> impl Iterator<Item = &RouteReport> {
        self.routes.iter().filter(|r| r.status == RouteStatus::Unguarded)
    }

    /// The CI mode: an error naming every unguarded, non-public route.
    pub fn deny_unguarded(&self) -> Result<(), String> {
        let lines: Vec<String> = self
            .unguarded()
            .map(|r| {
                let at = r
                    .source
                    .as_ref()
                    .map(|s| format!(" at {}:{}", s.file, s.line))
                    .unwrap_or_default();
                format!("  {} {} (handler {}){at}", r.method, r.path, r.handler)
            })
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{} route{} without a tokengate policy:\n{}\nadd #[accepts_token(...)] to the handler, a group policy with Router::guard, or mark it #[public] if it is meant to be open",
            lines.len(),
            if lines.len() == 1 { " is" } else { "s are" },
            lines.join("\n")
        ))
    }

    /// Renders the report.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Markdown => self.markdown(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default(),
            Format::OpenApi => serde_json::to_string_pretty(&self.openapi()).unwrap_or_default(),
            Format::Html => html::render(self),
        }
    }

    fn markdown(&self) -> String {
        let mut out = String::from(
            "| Method | Path | Status | Accepts | Requires | Handler | Source |\n|---|---|---|---|---|---|---|\n",
        );
        for r in &self.routes {
            let status = match r.status {
                RouteStatus::Guarded => "guarded",
                RouteStatus::Public => "public",
                RouteStatus::Unguarded => "**unguarded**",
            };
            let mut accepts = if r.accepts.is_empty() {
                "—".to_owned()
            } else {
                r.accepts
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if r.optional {
                accepts.push_str(", or none (optional)");
            }
            let mut requires: Vec<String> = r.requirements.iter().map(describe).collect();
            requires.extend(sender_constraint(r));
            let requires = if requires.is_empty() {
                "—".to_owned()
            } else {
                requires.join("; ")
            };
            let source = r
                .source
                .as_ref()
                .map(|s| format!("{}:{}", s.file, s.line))
                .unwrap_or_else(|| "—".to_owned());
            out.push_str(&format!(
                "| {} | `{}` | {status} | {accepts} | {requires} | `{}` | {source} |\n",
                r.method, r.path, r.handler
            ));
        }
        out
    }

    /// The OpenAPI 3.1 fragment: `components.securitySchemes` for the four token types and,
    /// per operation, a `security` requirement listing the alternatives with their scopes.
    pub fn openapi(&self) -> Value {
        let mut paths = serde_json::Map::new();
        // An operation inside a route is not an HTTP operation; its route is listed.
        for r in self.routes.iter().filter(|r| r.operation.is_none()) {
            let op = openapi_operation(r);
            let methods: Vec<String> = if r.method == "ANY" {
                ["get", "put", "post", "delete", "options", "head", "patch"]
                    .map(String::from)
                    .to_vec()
            } else {
                vec![r.method.to_ascii_lowercase()]
            };
            let item = paths
                .entry(r.path.clone())
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(item) = item {
                for m in methods {
                    item.insert(m, Value::Object(op.clone()));
                }
            }
        }
        json!({
            "openapi": "3.1.0",
            "components": {"securitySchemes": self.security_schemes()},
            "paths": paths,
        })
    }

    /// One bearer scheme a token type, and the client-certificate scheme when a route binds
    /// tokens to one.
    fn security_schemes(&self) -> serde_json::Map<String, Value> {
        let mut schemes: serde_json::Map<String, Value> = TokenType::ALL
            .into_iter()
            .map(|t| {
                let (format, description) = security_scheme(t);
                (
                    t.as_str().to_owned(),
                    json!({"type": "http", "scheme": "bearer", "bearerFormat": format, "description": description}),
                )
            })
            .collect();
        if self.routes.iter().any(|r| r.sender_constraints.requires_mtls()) {
            schemes.insert(
                MUTUAL_TLS_SCHEME.to_owned(),
                json!({"type": "mutualTLS", "description": "A client certificate (RFC 8705): the access token must be bound to it (`cnf.x5t#S256`)."}),
            );
        }
        schemes
    }
}

impl RouteReport {
    /// What one recorded route's handler and layers require, together.
    fn of(route: &RecordedRoute) -> RouteReport {
        let record = route.handler.record;
        let handler_policy = route.handler_policy();
        let public = record.is_some_and(|r| matches!(r.status, HandlerStatus::Public));
        let layers: Vec<PolicyView> = route.layers.iter().map(|p| PolicyView::of(p)).collect();
        let status = match (handler_policy.is_some() || !layers.is_empty(), public) {
            (true, _) => RouteStatus::Guarded,
            (false, true) => RouteStatus::Public,
            (false, false) => RouteStatus::Unguarded,
        };
        // Every policy the route's requests pass: the handler's and its layers'.
        let policies: Vec<&Policy> = handler_policy
            .into_iter()
            .chain(route.layers.iter().map(|p| &**p))
            .collect();
        let accepts = policies
            .iter()
            .map(|p| p.accepts())
            .reduce(TokenTypes::intersection)
            .unwrap_or(TokenTypes::EMPTY);
        let optional = status == RouteStatus::Guarded && policies.iter().all(|p| p.is_optional());
        let sender_constraints = policies.iter().fold(Binding::NONE, |b, p| b.with(p.binding()));
        let sender_constrained_types = match sender_constraints.is_none() {
            true => TokenTypes::EMPTY,
            false => accepts.intersection(BINDABLE),
        };
        let handler_view = handler_policy.map(PolicyView::of);
        let requirements = handler_view
            .iter()
            .chain(layers.iter())
            .flat_map(|v| v.requirements.iter().cloned())
            .collect();
        RouteReport {
            method: route.handler.method.to_owned(),
            path: route.path.clone(),
            handler: match (&route.operation, record) {
                (Some((operation, _)), _) => operation.clone(),
                (None, Some(r)) => r.path(),
                (None, None) => route.handler.type_name.to_owned(),
            },
            operation: route.operation.as_ref().map(|(operation, _)| operation.clone()),
            source: record.map(|r| SourceLocation {
                file: r.file.to_owned(),
                line: r.line,
            }),
            status,
            accepts,
            requirements,
            optional,
            sender_constraints,
            sender_constrained_types,
            handler_policy: handler_view,
            layers,
        }
    }
}

/// One route's OpenAPI operation: its security alternatives, a description of what it
/// requires, and tokengate's own members (status, sender constraints, rate limits).
fn openapi_operation(r: &RouteReport) -> serde_json::Map<String, Value> {
    let mut op = serde_json::Map::new();
    match r.status {
        RouteStatus::Public => {
            op.insert("security".into(), json!([{}]));
        }
        RouteStatus::Unguarded => {
            op.insert("security".into(), json!([{}]));
            op.insert("x-tokengate-unguarded".into(), json!(true));
        }
        RouteStatus::Guarded => {
            let mut alternatives = security_alternatives(r.accepts, &r.requirements);
            stamp_mutual_tls(r, &mut alternatives);
            if r.optional {
                alternatives.push(json!({}));
            }
            op.insert("security".into(), Value::Array(alternatives));
        }
    }
    let description = operation_description(r);
    if !description.is_empty() {
        op.insert("description".into(), Value::String(description));
    }
    if !r.sender_constraints.is_none() {
        op.insert(
            "x-tokengate-sender-constraints".into(),
            json!({"require": r.sender_constraints, "applies_to": r.sender_constrained_types}),
        );
    }
    op.insert(
        "x-tokengate-status".into(),
        serde_json::to_value(r.status).unwrap_or(Value::Null),
    );
    let limits = rate_limits(r);
    if !limits.is_empty() {
        op.insert("x-tokengate-rate-limits".into(), Value::Array(limits));
        op.insert(
            "responses".into(),
            json!({"429": {"description": "Over the rate limit: retry after `Retry-After` seconds (`RateLimit-Policy` and `RateLimit` headers on every answer)."}}),
        );
    }
    op
}

/// The OpenAPI security scheme of client certificates, added to the alternatives of the types
/// a `#[require_mtls]` route binds.
const MUTUAL_TLS_SCHEME: &str = "mutual_tls";

/// The route's sender constraints for people: `DPoP proof (for oauth_token)`.
fn sender_constraint(r: &RouteReport) -> Option<String> {
    let what = match (
        r.sender_constraints.requires_dpop(),
        r.sender_constraints.requires_mtls(),
    ) {
        (false, false) => return None,
        (true, false) => "DPoP-bound token and proof",
        (false, true) => "certificate-bound token (mTLS)",
        (true, true) => "DPoP-bound token and proof, certificate-bound token (mTLS)",
    };
    Some(format!("{what} (for {})", r.sender_constrained_types))
}

fn describe(r: &RequirementReport) -> String {
    let joiner = match r.matching {
        Match::All => " and ",
        Match::Any => " or ",
    };
    let values = r
        .values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(joiner);
    match r.kind {
        // Checked for every accepted type, by the handler's guard: the "for" would be noise.
        RequirementKind::Condition => format!("condition {values}"),
        RequirementKind::MaxAge => format!(
            "authentication at most {} s old (for {})",
            r.values.join(", "),
            r.applies_to
        ),
        RequirementKind::Reverification => {
            let what: Vec<String> = r.values.iter().map(|v| reverification(v)).collect();
            format!("reverification {} (for {})", what.join(joiner), r.applies_to)
        }
        RequirementKind::RateLimit => format!(
            "rate limit `{}` per {} (for {})",
            r.values.first().map_or("", String::as_str),
            r.values.get(1).map_or("key", String::as_str),
            r.applies_to
        ),
        _ => format!("{} {values} (for {})", r.kind.as_str(), r.applies_to),
    }
}

/// A reverification requirement for people: the preset, or the level and its minutes.
fn reverification(value: &str) -> String {
    match value.parse::<Reverification>() {
        Ok(Reverification::Custom { level, after_minutes }) => {
            format!("`{}` within {after_minutes} minutes", level.as_str())
        }
        _ => format!("`{value}`"),
    }
}

/// What the refusals of a route's session and step-up requirements look like, for OpenAPI.
fn refusals(r: &RouteReport) -> String {
    let has = |kind: RequirementKind| r.requirements.iter().any(|q| q.kind == kind);
    let mut out = String::new();
    if has(RequirementKind::Reverification) {
        out.push_str(" A session not verified recently enough gets `403` with Clerk's `reverification-error` body (`clerk_error`), which Clerk's front-end turns into a prompt.");
    }
    if has(RequirementKind::Acr) || has(RequirementKind::MaxAge) {
        out.push_str(" An OAuth token without the authentication required gets `401` with an RFC 9470 challenge (`error=\"insufficient_user_authentication\"`, `acr_values`, `max_age`).");
    }
    out
}

/// The route's rate limits, for OpenAPI's `x-tokengate-rate-limits`.
fn rate_limits(r: &RouteReport) -> Vec<Value> {
    r.requirements
        .iter()
        .filter(|q| q.kind == RequirementKind::RateLimit)
        .map(|q| {
            json!({
                "rate": q.values.first(),
                "per": q.values.get(1),
                "token_types": q.applies_to.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn operation_description(r: &RouteReport) -> String {
    let mut non_scope: Vec<String> = r
        .requirements
        .iter()
        .filter(|q| q.kind != RequirementKind::Scope)
        .map(describe)
        .collect();
    non_scope.extend(sender_constraint(r));
    if non_scope.is_empty() {
        return String::new();
    }
    let conditions = if r.requirements.iter().any(|q| q.kind == RequirementKind::Condition) {
        " A condition is a check in the service's code (a predicate over the caller and the request); a request that fails it gets `403` with reason `condition-failed`."
    } else {
        ""
    };
    format!("Requires {}.{conditions}{}", non_scope.join("; "), refusals(r))
}

/// The OpenAPI security scheme of a token type, named by [`TokenType::as_str`]: an HTTP
/// bearer scheme's `bearerFormat` and `description`.
pub fn security_scheme(token_type: TokenType) -> (&'static str, &'static str) {
    match token_type {
        TokenType::SessionToken => (
            "JWT",
            "Session token of a signed-in user (Authorization header or __session cookie).",
        ),
        TokenType::OAuthToken => (
            "JWT or opaque",
            "OAuth 2.0 access token (RFC 9068 JWT or introspected opaque token).",
        ),
        TokenType::ApiKey => ("ak_…", "API key."),
        TokenType::M2mToken => ("mt_… or JWT", "Machine-to-machine token."),
    }
}

/// A policy's OpenAPI `security`: one requirement object per accepted type and per choice of
/// its any-of scopes (`{"api_key": ["write:users"]}`), and `{}` last when the policy is
/// optional (anonymous callers admitted). What `--format openapi` writes per operation, and
/// what the `utoipa` and `aide` integrations stamp onto their documents.
pub fn security_requirements(policy: &Policy) -> Vec<Vec<(TokenType, Vec<String>)>> {
    let view = PolicyView::of(policy);
    requirement_objects(view.accepts, &view.requirements, view.optional)
}

/// [`security_requirements`] of a route: every policy on it (the handler's and the group
/// layers').
pub fn security_of_route(route: &RouteReport) -> Vec<Vec<(TokenType, Vec<String>)>> {
    requirement_objects(route.accepts, &route.requirements, route.optional)
}

fn requirement_objects(
    accepts: TokenTypes,
    requirements: &[RequirementReport],
    optional: bool,
) -> Vec<Vec<(TokenType, Vec<String>)>> {
    let mut out: Vec<Vec<(TokenType, Vec<String>)>> = accepts
        .iter()
        .flat_map(|t| {
            scope_alternatives(t, requirements)
                .into_iter()
                .map(move |s| vec![(t, s)])
        })
        .collect();
    if optional {
        out.push(Vec::new());
    }
    out
}

/// Adds the mutual-TLS scheme to the alternatives of the types that must be certificate-bound.
fn stamp_mutual_tls(r: &RouteReport, alternatives: &mut [Value]) {
    if !r.sender_constraints.requires_mtls() {
        return;
    }
    for alternative in alternatives.iter_mut() {
        let bound = r
            .sender_constrained_types
            .iter()
            .any(|t| alternative.get(t.as_str()).is_some());
        if bound {
            alternative[MUTUAL_TLS_SCHEME] = json!([]);
        }
    }
}

/// One security requirement object per accepted type and per choice of any-of values.
fn security_alternatives(accepts: TokenTypes, requirements: &[RequirementReport]) -> Vec<Value> {
    let mut out = Vec::new();
    for t in accepts.iter() {
        for scopes in scope_alternatives(t, requirements) {
            out.push(json!({ t.as_str(): scopes }));
        }
    }
    out
}

/// The sets of scopes a token of type `t` may carry to pass the scope requirements, sorted.
fn scope_alternatives(t: TokenType, requirements: &[RequirementReport]) -> Vec<Vec<String>> {
    // Each alternative is the set of scopes one token of type `t` must carry.
    let mut alternatives: Vec<Vec<String>> = vec![Vec::new()];
    for q in requirements
        .iter()
        .filter(|q| q.kind == RequirementKind::Scope && q.applies_to.contains(t))
    {
        alternatives = match q.matching {
            Match::All => alternatives
                .into_iter()
                .map(|mut a| {
                    a.extend(q.values.iter().cloned());
                    a
                })
                .collect(),
            Match::Any => alternatives
                .iter()
                .flat_map(|a| {
                    q.values.iter().map(move |v| {
                        let mut a = a.clone();
                        a.push(v.clone());
                        a
                    })
                })
                .collect(),
        };
    }
    for scopes in alternatives.iter_mut() {
        scopes.sort();
        scopes.dedup();
    }
    alternatives
}

impl fmt::Display for PolicyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.markdown())
    }
}
