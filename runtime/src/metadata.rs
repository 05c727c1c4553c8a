//! OAuth 2.0 Protected Resource Metadata (RFC 9728), derived from the route policies.
//!
//! An OAuth client (an MCP client, for one) learns from this document which authorization
//! servers issue tokens for a resource and which scopes to ask for. tokengate builds it from
//! the same registry its guards enforce ([`Router::report`](crate::routing::Router::report)):
//! `scopes_supported` is every scope a route requires of an OAuth access token, so what is
//! advertised and what is enforced cannot differ.
//!
//! [`Router::serve_resource_metadata`](crate::routing::Router::serve_resource_metadata) serves
//! the document at `/.well-known/oauth-protected-resource` and, for a resource with a path,
//! at `/.well-known/oauth-protected-resource/<path>` (RFC 9728 §3.1), as a public route; give
//! [`ProtectedResource::metadata_url`] to
//! [`TokenGateBuilder::resource_metadata`](crate::TokenGateBuilder::resource_metadata) and every
//! `401` and `403 insufficient_scope` points at it (RFC 9728 §5.1).
//!
//! ```
//! use tokengate_runtime::metadata::ProtectedResource;
//! use tokengate_runtime::routing::Router;
//!
//! let resource = ProtectedResource::new("https://api.example.com/mcp")
//!     .unwrap()
//!     .authorization_server("https://auth.example.com")
//!     .unwrap()
//!     .resource_name("Example MCP server");
//! assert_eq!(
//!     resource.metadata_url(),
//!     "https://api.example.com/.well-known/oauth-protected-resource/mcp"
//! );
//! let app: Router = Router::new().serve_resource_metadata(&resource);
//! let document = app.resource_metadata(&resource);
//! assert_eq!(document.resource, "https://api.example.com/mcp");
//! assert_eq!(document.bearer_methods_supported, ["header"]);
//! ```

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::policy::RequirementKind;
use crate::report::PolicyReport;
use crate::token::TokenType;

/// The path of the metadata of a resource without a path (RFC 9728 §3).
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// A resource identifier or authorization server URL that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The resource identifier is not an absolute `https` or `http` URL without a fragment.
    #[error(
        "resource {url:?} cannot identify a protected resource: {why}; give the absolute URL clients call, e.g. https://api.example.com/mcp (RFC 9728 §1.2)"
    )]
    InvalidResource {
        /// What was given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An authorization server's issuer is not an absolute `https` or `http` URL.
    #[error(
        "authorization server {url:?} is not an issuer URL: {why}; give the issuer identifier of the authorization server, e.g. https://auth.example.com (RFC 8414 §2)"
    )]
    InvalidAuthorizationServer {
        /// What was given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// What the application says about itself as a protected resource: its identifier, the
/// authorization servers it trusts and how it is presented. The scopes come from the routes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct ProtectedResource {
    resource: String,
    /// `scheme://authority`, without a path.
    origin: String,
    /// The path, without a trailing `/` (empty for a resource without a path).
    path: String,
    authorization_servers: Vec<String>,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    /// Members tokengate does not model, written after the others (e.g. the DPoP ones of
    /// [`BindingMetadata`](crate::binding::metadata::BindingMetadata)).
    other: serde_json::Map<String, serde_json::Value>,
}

impl ProtectedResource {
    /// The resource identified by `resource`: the absolute URL clients call (RFC 8707), the
    /// value OAuth access tokens for it carry in `aud`. `https` (or `http` for development),
    /// no fragment, no user information.
    pub fn new(resource: impl Into<String>) -> Result<ProtectedResource, MetadataError> {
        let resource = resource.into();
        let invalid = |why| MetadataError::InvalidResource {
            url: resource.clone(),
            why,
        };
        let parsed = checked_url(&resource).map_err(invalid)?;
        if parsed.query().is_some() {
            return Err(invalid(
                "it has a query, which RFC 9728 §1.2 discourages and clients drop",
            ));
        }
        let origin = parsed.origin().ascii_serialization();
        let path = parsed.path().trim_end_matches('/').to_owned();
        Ok(ProtectedResource {
            resource,
            origin,
            path,
            authorization_servers: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            other: serde_json::Map::new(),
        })
    }

    /// Adds an authorization server (its issuer identifier, RFC 8414) to
    /// `authorization_servers`.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Result<ProtectedResource, MetadataError> {
        let issuer = issuer.into();
        checked_url(&issuer).map_err(|why| MetadataError::InvalidAuthorizationServer {
            url: issuer.clone(),
            why,
        })?;
        if !self.authorization_servers.contains(&issuer) {
            self.authorization_servers.push(issuer);
        }
        Ok(self)
    }

    /// The human-readable name (`resource_name`).
    pub fn resource_name(mut self, name: impl Into<String>) -> ProtectedResource {
        self.resource_name = Some(name.into());
        self
    }

    /// The URL of the resource's documentation for developers (`resource_documentation`).
    pub fn resource_documentation(mut self, url: impl Into<String>) -> ProtectedResource {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The resource identifier, as given.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The resource's path, without a trailing `/` (empty for a resource without a path).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The authorization servers, in the order given.
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }

    /// The path the document is served at (RFC 9728 §3.1: the well-known path, then the
    /// resource's path): `/.well-known/oauth-protected-resource/mcp` for `…/mcp`.
    pub fn metadata_path(&self) -> String {
        format!("{WELL_KNOWN_PATH}{}", self.path)
    }

    /// The absolute URL of the document, for `resource_metadata` in challenges.
    pub fn metadata_url(&self) -> String {
        format!("{}{}", self.origin, self.metadata_path())
    }

    /// Adds members to the document (RFC 9728 §2 members tokengate does not model, or
    /// extensions), e.g. `BindingMetadata::of(&gate, &report, certificates).to_json()`.
    pub fn members(mut self, members: serde_json::Map<String, serde_json::Value>) -> ProtectedResource {
        self.other.extend(members);
        self
    }

    /// The document for the routes `report` lists.
    pub fn document(&self, report: &PolicyReport) -> ResourceMetadata {
        ResourceMetadata {
            resource: self.resource.clone(),
            authorization_servers: self.authorization_servers.clone(),
            scopes_supported: oauth_scopes(report),
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: self.resource_name.clone(),
            resource_documentation: self.resource_documentation.clone(),
            other: self.other.clone(),
        }
    }
}

/// Parses an absolute `https`/`http` URL with a host, no fragment and no user information.
fn checked_url(url: &str) -> Result<url::Url, &'static str> {
    let parsed = url::Url::parse(url).map_err(|_| "it is not an absolute URL")?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("its scheme is not https (or http for development)");
    }
    if parsed.host().is_none() {
        return Err("it has no host");
    }
    if parsed.fragment().is_some() || url.contains('#') {
        return Err("it has a fragment (`#…`), which RFC 9728 forbids");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("it holds user information (`user@`)");
    }
    if url
        .bytes()
        .any(|b| !(0x21..=0x7E).contains(&b) || b == b'"' || b == b'\\')
    {
        return Err("it holds spaces, quotes, backslashes or non-ASCII characters");
    }
    Ok(parsed)
}

/// Every scope a route requires of an OAuth access token, sorted, once each.
fn oauth_scopes(report: &PolicyReport) -> Vec<String> {
    let mut scopes: Vec<String> = report
        .routes
        .iter()
        .flat_map(|route| &route.requirements)
        .filter(|r| r.kind == RequirementKind::Scope && r.applies_to.contains(TokenType::OAuthToken))
        .flat_map(|r| r.values.iter().cloned())
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// The Protected Resource Metadata document (RFC 9728 §2), as served.
///
/// Optional fields are left out when empty; fields tokengate does not model yet (and
/// extensions) go in [`other`](Self::other), which is written after the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ResourceMetadata {
    /// The resource identifier.
    pub resource: String,
    /// The issuers of the authorization servers that issue tokens for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Every scope a route requires of an OAuth access token, sorted.
    pub scopes_supported: Vec<String>,
    /// How tokens are presented: `header` (RFC 6750 §2.1).
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// The URL of developer documentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// Further fields, by name.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl IntoResponse for ResourceMetadata {
    fn into_response(self) -> Response {
        // Public, and the same for every caller: any origin may read it (RFC 9728 §3.2 clients
        // include browsers), and a cache may keep it for a while.
        (
            [
                (http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                (http::header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            Json(self),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_path_inserts_the_well_known_segment_before_the_path() {
        for (resource, url) in [
            (
                "https://a.example",
                "https://a.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://a.example/",
                "https://a.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://a.example/mcp",
                "https://a.example/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "http://127.0.0.1:3000/a/b/",
                "http://127.0.0.1:3000/.well-known/oauth-protected-resource/a/b",
            ),
        ] {
            assert_eq!(ProtectedResource::new(resource).unwrap().metadata_url(), url);
        }
    }

    #[test]
    fn unusable_identifiers_are_refused_with_the_reason() {
        for (resource, why) in [
            ("/mcp", "not an absolute URL"),
            ("ftp://a.example/x", "scheme"),
            ("https://a.example/mcp#x", "fragment"),
            ("https://a.example/mcp#", "fragment"),
            ("https://u:p@a.example/mcp", "user information"),
            ("https://a.example/mcp?x=1", "query"),
            ("https://a.example/m\"cp", "quotes"),
        ] {
            let e = ProtectedResource::new(resource).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("RFC 9728"), "{resource}: {e}");
        }
        let e = ProtectedResource::new("https://a.example")
            .unwrap()
            .authorization_server("auth.example")
            .unwrap_err();
        assert!(e.to_string().contains("issuer"), "{e}");
    }

    #[test]
    fn optional_fields_are_left_out_when_empty() {
        let resource = ProtectedResource::new("https://a.example/mcp").unwrap();
        let report = crate::routing::Router::<()>::new().report();
        let json = serde_json::to_value(resource.document(&report)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"resource": "https://a.example/mcp", "scopes_supported": [], "bearer_methods_supported": ["header"]})
        );
    }
}
