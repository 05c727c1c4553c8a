//! What RFC 9728's protected-resource metadata says about sender-constrained tokens, from
//! the gate and the route-policy report: `dpop_signing_alg_values_supported`,
//! `dpop_bound_access_tokens_required` and `tls_client_certificate_bound_access_tokens`.
//!
//! ```
//! use tokengate_runtime::binding::metadata::BindingMetadata;
//! use tokengate_runtime::binding::{DpopConfig, DpopVerifier};
//! use tokengate_runtime::routing::Router;
//! use tokengate_runtime::TokenGate;
//!
//! let gate = TokenGate::builder()
//!     .dpop(DpopVerifier::new(DpopConfig::new("https://api.example.com").unwrap()))
//!     .build()
//!     .unwrap();
//! let report = Router::<()>::new().report();
//! let members = BindingMetadata::of(&gate, &report, false).to_json();
//! assert_eq!(members["dpop_signing_alg_values_supported"][0], "ES256");
//! assert_eq!(members["dpop_bound_access_tokens_required"], false);
//! ```

use serde_json::{Map, Value};

use crate::gate::TokenGate;
use crate::report::{PolicyReport, RouteStatus};

use super::BINDABLE;

/// The sender-constraint members of a protected resource's metadata (RFC 9728 §2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BindingMetadata {
    /// The JWS algorithms accepted for DPoP proofs; absent when the gate checks none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<&'static str>,
    /// Whether every guarded route that takes OAuth or M2M tokens requires them DPoP-bound
    /// (`#[require_dpop]`), and there is at least one.
    pub dpop_bound_access_tokens_required: bool,
    /// Whether certificate-bound tokens can be used: the application has a source of client
    /// certificates (its own TLS with a client CA, or a trusted proxy's header), or a route
    /// requires them (`#[require_mtls]`).
    pub tls_client_certificate_bound_access_tokens: bool,
}

impl BindingMetadata {
    /// The members for `gate` serving the routes of `report`; `certificates`: whether client
    /// certificates reach the gate (`binding::tls` with a client CA, or
    /// `ClientCertHeaderLayer`).
    pub fn of(gate: &TokenGate, report: &PolicyReport, certificates: bool) -> BindingMetadata {
        let bindable_routes: Vec<_> = report
            .routes
            .iter()
            .filter(|r| r.status == RouteStatus::Guarded && !r.accepts.intersection(BINDABLE).is_empty())
            .collect();
        BindingMetadata {
            dpop_signing_alg_values_supported: gate.dpop().map(|d| d.algorithm_names()).unwrap_or_default(),
            dpop_bound_access_tokens_required: gate.dpop().is_some()
                && !bindable_routes.is_empty()
                && bindable_routes.iter().all(|r| r.sender_constraints.requires_dpop()),
            tls_client_certificate_bound_access_tokens: certificates
                || bindable_routes.iter().any(|r| r.sender_constraints.requires_mtls()),
        }
    }

    /// The members as a JSON object, to merge into the metadata document.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(members)) => members,
            _ => Map::new(),
        }
    }
}
