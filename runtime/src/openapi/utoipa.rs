//! [`TokengateSecurity`]: the guards' security requirements in utoipa's document.
//!
//! ```
//! use tokengate_runtime::openapi::utoipa::TokengateSecurity;
//! use tokengate_runtime::routing::{Router, get};
//! use utoipa::{Modify as _, OpenApi};
//!
//! #[derive(OpenApi)]
//! #[openapi(info(title = "example", version = "1"))]
//! struct ApiDoc;
//!
//! let routes: Router = Router::new().route("/health", get(|| async { "ok" }));
//! let mut doc = ApiDoc::openapi();
//! TokengateSecurity::new(routes.report()).modify(&mut doc);
//! let json = serde_json::to_value(&doc).unwrap();
//! assert_eq!(json["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
//! ```

use ::utoipa::openapi::path::{Operation, PathItem};
use ::utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use ::utoipa::openapi::{Components, OpenApi};

use crate::report::{PolicyReport, RouteReport, RouteStatus, security_of_route, security_scheme};
use crate::token::TokenType;

/// A `utoipa::Modify` that adds the four bearer schemes (`session_token`, `oauth_token`,
/// `api_key`, `m2m_token`) to `components.securitySchemes` and, to every operation of the
/// document that a route of the report serves (same path, same method), the route's
/// `security`: its alternatives with the scopes the report computes, `{}` last on an optional
/// route, `[]` on a `#[public]` one. Operations the report does not know are left alone.
#[derive(Clone, Debug)]
pub struct TokengateSecurity {
    report: PolicyReport,
}

impl TokengateSecurity {
    /// The modifier for the routes of `report` (`routes().report()`).
    pub fn new(report: PolicyReport) -> TokengateSecurity {
        TokengateSecurity { report }
    }
}

impl ::utoipa::Modify for TokengateSecurity {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Components::default);
        for t in TokenType::ALL {
            let (format, description) = security_scheme(t);
            let http = Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format(format)
                .description(Some(description))
                .build();
            components.add_security_scheme(t.as_str(), SecurityScheme::Http(http));
        }
        for route in &self.report.routes {
            let Some(security) = security(route) else { continue };
            if let Some(item) = openapi.paths.paths.get_mut(&route.path) {
                for operation in operations(item, &route.method) {
                    operation.security = Some(security.clone());
                }
            }
        }
    }
}

/// The route's requirements as utoipa's type; `None` for an unguarded route (nothing to say).
fn security(route: &RouteReport) -> Option<Vec<SecurityRequirement>> {
    match route.status {
        RouteStatus::Public => Some(Vec::new()),
        RouteStatus::Unguarded => None,
        RouteStatus::Guarded => Some(
            security_of_route(route)
                .into_iter()
                .map(|alternative| match alternative.first() {
                    Some((t, scopes)) => SecurityRequirement::new(t.as_str(), scopes.clone()),
                    None => SecurityRequirement::default(),
                })
                .collect(),
        ),
    }
}

/// The operations of `item` for a report's method (`ANY`: all of them).
fn operations<'a>(item: &'a mut PathItem, method: &str) -> Vec<&'a mut Operation> {
    let PathItem {
        get,
        put,
        post,
        delete,
        options,
        head,
        patch,
        trace,
        ..
    } = item;
    let all = [
        ("GET", get),
        ("PUT", put),
        ("POST", post),
        ("DELETE", delete),
        ("OPTIONS", options),
        ("HEAD", head),
        ("PATCH", patch),
        ("TRACE", trace),
    ];
    all.into_iter()
        .filter(|(m, _)| method == "ANY" || method.eq_ignore_ascii_case(m))
        .filter_map(|(_, op)| op.as_mut())
        .collect()
}
