//! MCP tools guarded by policies: each tool's scopes written once, enforced on `tools/call`,
//! listed in the report and in the RFC 9728 metadata.
//!
//! An MCP server takes every message at one endpoint (`POST /mcp`), so a route's policy can
//! only say who may talk to it at all. [`ToolPolicies`] holds a [`Policy`] per tool;
//! [`ToolPolicies::authorize`] checks each `tools/call` of a request body against its tool's
//! policy, with the identity the route's own guard verified, before the MCP SDK sees it. A
//! missing scope is the MCP spec's scope challenge: `403` with `error="insufficient_scope"`,
//! `scope="…"` and, when configured, `resource_metadata="…"`.
//! [`Router::mcp_tools`] records the tools as operations of the route, so the report and
//! `scopes_supported` list their scopes from the same values.
//!
//! ```
//! use tokengate_runtime::mcp::ToolPolicies;
//! use tokengate_runtime::routing::{Router, post};
//! use tokengate_runtime::{Match, Policy, Requirement, RequirementKind, TokenTypes};
//!
//! let scope = |s: &'static str| {
//!     Policy::accepting(TokenTypes::ANY).require(Requirement::new(RequirementKind::Scope, Match::All, [s]).unwrap())
//! };
//! let tools = ToolPolicies::new().tool("list_users", scope("users:read")).tool("delete_user", scope("users:write"));
//! assert!(tools.check_served(["list_users", "delete_user"]).is_ok());
//! assert!(tools.check_served(["list_users", "drop_tables"]).is_err());
//! let app: Router = Router::new().mcp_tools("/mcp", &tools);
//! assert_eq!(app.report().routes[0].operation.as_deref(), Some("tools/call delete_user"));
//! ```

use std::collections::BTreeMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Method, Request, StatusCode};
use serde_json::value::RawValue;

use crate::gate::TokenGate;
use crate::policy::Policy;
use crate::routing::Router;

/// The largest JSON-RPC body read (the MCP Rust SDK's own limit): larger is `413`.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A policy per MCP tool, by name.
#[derive(Clone, Debug, Default)]
pub struct ToolPolicies {
    tools: BTreeMap<String, Policy>,
}

impl ToolPolicies {
    /// No tool yet.
    pub fn new() -> ToolPolicies {
        ToolPolicies::default()
    }

    /// Calls of the tool `name` must meet `policy` (replacing an earlier one).
    #[must_use]
    pub fn tool(mut self, name: impl Into<String>, policy: Policy) -> ToolPolicies {
        self.tools.insert(name.into(), policy);
        self
    }

    /// The policy of the tool `name`.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.tools.get(name)
    }

    /// The tools, by name, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Policy)> {
        self.tools.iter().map(|(name, policy)| (name.as_str(), policy))
    }

    /// Checks, at start-up, that the tools the MCP server serves and the tools with a policy
    /// are the same: a served tool without one would be open to any caller the route lets in.
    pub fn check_served<'a>(&self, served: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
        let served: Vec<&str> = served.into_iter().collect();
        let unguarded: Vec<&str> = served
            .iter()
            .copied()
            .filter(|t| !self.tools.contains_key(*t))
            .collect();
        let unknown: Vec<&str> = self
            .tools
            .keys()
            .map(String::as_str)
            .filter(|t| !served.contains(t))
            .collect();
        if unguarded.is_empty() && unknown.is_empty() {
            return Ok(());
        }
        Err(format!(
            "MCP tools without a policy: {unguarded:?}; policies for tools not served: {unknown:?}; give every served tool a policy with ToolPolicies::tool, and only those"
        ))
    }

    /// Checks each `tools/call` in a `POST` body (one JSON-RPC message or a batch) against its
    /// tool's policy with `gate` and hands the request on, body unchanged; or the refusal,
    /// rendered by `gate`. Run it behind the route's guard (a handler attribute or a
    /// [`PolicyLayer`](crate::PolicyLayer)): the identity it verified is checked again, not
    /// verified twice. A call of a tool without a policy goes on (the MCP server answers
    /// "unknown tool"; [`ToolPolicies::check_served`] keeps served tools from being among them).
    /// A body the guard cannot read unambiguously (not JSON-RPC, a key given twice, a tool
    /// name that is not a string) is refused with `400`, never passed on unchecked.
    pub async fn authorize(&self, gate: &TokenGate, request: Request<Body>) -> Result<Request<Body>, Response> {
        if request.method() != Method::POST {
            return Ok(request);
        }
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "the JSON-RPC body is over 4 MiB").into_response())?;
        for name in called_tools(&bytes).map_err(|_| unreadable())? {
            let Some(policy) = self.tools.get(&name) else {
                continue;
            };
            if let Err(rejection) = gate.authorize(&parts.headers, &parts.extensions, policy).await {
                return Err(gate.render(rejection));
            }
        }
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }
}

/// One JSON-RPC message, as far as the guard reads it. A key given twice is an error here
/// (serde's derive refuses duplicate fields), where a parser that keeps the first or the last
/// could read another tool than the MCP server does.
#[derive(serde::Deserialize)]
struct Message {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

/// The parameters of a `tools/call`, as far as the guard reads them.
#[derive(serde::Deserialize)]
struct CallParams {
    name: String,
}

/// The tool names of the `tools/call` requests in a JSON-RPC body (one message or a batch);
/// `Err` for a body the guard cannot read unambiguously (not JSON-RPC, a key given twice, a
/// tool name that is not a string), which is refused rather than passed on.
fn called_tools(body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    let messages: Vec<Message> = if body.trim_ascii_start().first() == Some(&b'[') {
        serde_json::from_slice(body)?
    } else {
        vec![serde_json::from_slice(body)?]
    };
    let mut names = Vec::new();
    for message in messages.iter().filter(|m| m.method.as_deref() == Some("tools/call")) {
        let params = message.params.as_deref().map_or("null", RawValue::get);
        names.push(serde_json::from_str::<CallParams>(params)?.name);
    }
    Ok(names)
}

/// A body the guard cannot read: `400`, as the MCP server would answer it.
fn unreadable() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({
            "jsonrpc": "2.0", "id": null,
            "error": {"code": -32600, "message": "the body is not one JSON-RPC message or batch with a string tool name, each key once"},
        })),
    )
        .into_response()
}

impl<S: Clone + Send + Sync + 'static> Router<S> {
    /// Records each tool of `tools` as an operation `tools/call <name>` of `POST path`
    /// ([`Router::operation`]): in the report with its policy, its scopes in the metadata.
    pub fn mcp_tools(self, path: &str, tools: &ToolPolicies) -> Self {
        tools.iter().fold(self, |router, (name, policy)| {
            router.operation(Method::POST, path, format!("tools/call {name}"), policy.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_calls_are_found_in_single_messages_and_batches() {
        let call = |name: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#)
        };
        assert_eq!(called_tools(call("a").as_bytes()).unwrap(), ["a"]);
        let batch = format!(
            r#" [{}, {{"jsonrpc":"2.0","method":"tools/list","id":2,"params":[1]}}, {}]"#,
            call("a"),
            call("b")
        );
        assert_eq!(called_tools(batch.as_bytes()).unwrap(), ["a", "b"]);
        for other in [
            &br#"{"jsonrpc":"2.0","method":"tools/list"}"#[..],
            br#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
        ] {
            assert!(called_tools(other).unwrap().is_empty());
        }
    }

    #[test]
    fn an_ambiguous_or_unreadable_body_is_an_error_not_a_pass() {
        for body in [
            &b"not json"[..],
            br#"{"method":"tools/call","params":{"name":"list_users","name":"delete_user"}}"#,
            br#"{"method":"tools/call","params":{"name":"list_users","na\u006de":"delete_user"}}"#,
            br#"{"method":"tools/list","method":"tools/call","params":{"name":"delete_user"}}"#,
            br#"{"method":"tools/call","params":{"name":7}}"#,
            br#"{"method":"tools/call"}"#,
            br#"[{"method":"tools/call","params":{"name":"a"}}, 5]"#,
        ] {
            assert!(called_tools(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
