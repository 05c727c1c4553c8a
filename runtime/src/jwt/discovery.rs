//! OAuth / OIDC discovery: find an issuer's `jwks_uri` from its metadata document.
//!
//! Tries `{issuer}/.well-known/openid-configuration` (OIDC Discovery), then the RFC 8414
//! location `https://host/.well-known/oauth-authorization-server{path}`. The document's
//! `issuer` must equal the configured issuer exactly (RFC 8414 §3.3), so a metadata document
//! cannot redirect tokens to another issuer.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tokengate_runtime::jwt::JwtConfigError> {
//! use tokengate_runtime::jwt::discovery::discover;
//!
//! let metadata = discover("https://auth.example.com").await?;
//! println!("keys at {}", metadata.jwks_uri);
//! # Ok(()) }
//! ```

use std::time::Duration;

use super::config::JwtConfigError;
use super::jwks::{check_url, http_client};

/// What discovery found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// The issuer, as the document states it (equal to the configured one).
    pub issuer: String,
    /// Where the issuer publishes its keys.
    pub jwks_uri: String,
}

/// The largest metadata document read.
const MAX_METADATA_BYTES: usize = 256 * 1024;

/// The metadata URLs to try for `issuer`, in order.
pub fn metadata_urls(issuer: &str) -> Result<Vec<String>, JwtConfigError> {
    let url = check_url(issuer, false)?;
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{trimmed}/.well-known/openid-configuration")];
    let path = url.path().trim_end_matches('/');
    let origin = url.origin().ascii_serialization();
    urls.push(format!("{origin}/.well-known/oauth-authorization-server{path}"));
    if !path.is_empty() {
        urls.push(format!("{trimmed}/.well-known/oauth-authorization-server"));
    }
    Ok(urls)
}

/// Fetches `issuer`'s metadata and returns its `jwks_uri`.
pub async fn discover(issuer: &str) -> Result<Metadata, JwtConfigError> {
    let urls = metadata_urls(issuer)?;
    let client = http_client(Duration::from_secs(10), issuer.starts_with("https://"))?;
    let mut failures = Vec::new();
    for url in urls {
        match fetch(&client, &url).await {
            Ok(doc) => return accept(issuer, doc),
            Err(reason) => failures.push(format!("{url}: {reason}")),
        }
    }
    Err(JwtConfigError::Discovery(format!(
        "no metadata document for issuer {issuer} ({})",
        failures.join("; ")
    )))
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let mut response = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
        if body.len() + chunk.len() > MAX_METADATA_BYTES {
            return Err("document too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

fn accept(issuer: &str, doc: serde_json::Value) -> Result<Metadata, JwtConfigError> {
    let stated = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or_default();
    if stated != issuer {
        return Err(JwtConfigError::Discovery(format!(
            "the metadata names issuer {stated:?}, not {issuer:?}; configure the issuer exactly as the server states it"
        )));
    }
    let Some(jwks_uri) = doc.get("jwks_uri").and_then(|v| v.as_str()) else {
        return Err(JwtConfigError::Discovery(format!(
            "the metadata of {issuer} has no jwks_uri; configure the JWKS URL directly"
        )));
    };
    check_url(jwks_uri, false)?;
    Ok(Metadata {
        issuer: stated.to_owned(),
        jwks_uri: jwks_uri.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_locations() {
        assert_eq!(
            metadata_urls("https://auth.example.com").unwrap(),
            [
                "https://auth.example.com/.well-known/openid-configuration",
                "https://auth.example.com/.well-known/oauth-authorization-server"
            ]
        );
        assert_eq!(
            metadata_urls("https://example.com/tenant/").unwrap(),
            [
                "https://example.com/tenant/.well-known/openid-configuration",
                "https://example.com/.well-known/oauth-authorization-server/tenant",
                "https://example.com/tenant/.well-known/oauth-authorization-server"
            ]
        );
        assert!(metadata_urls("http://example.com").is_err());
    }

    #[test]
    fn issuer_must_match() {
        let doc = serde_json::json!({"issuer":"https://evil.example","jwks_uri":"https://evil.example/jwks"});
        assert!(accept("https://auth.example", doc).is_err());
        let doc = serde_json::json!({"issuer":"https://auth.example"});
        assert!(accept("https://auth.example", doc).is_err());
        let doc = serde_json::json!({"issuer":"https://auth.example","jwks_uri":"https://auth.example/jwks"});
        assert_eq!(
            accept("https://auth.example", doc).unwrap().jwks_uri,
            "https://auth.example/jwks"
        );
    }
}
