//! The observed state of a `VirtualDestination`: what the controller selected, where it placed
//! config, the routing in force and why, and any errors.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::decide::Decision;

/// Observed state of a `VirtualDestination`, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualDestinationStatus {
    /// The services the selectors matched, one per cluster.
    #[serde(default)]
    pub backing_services: Vec<BackingService>,
    /// Clusters that receive generated config.
    #[serde(default)]
    pub placement: Vec<String>,
    /// The routing in force and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<Decision>,
    /// Validation or apply errors; non-empty means no config is generated.
    #[serde(default)]
    pub errors: Vec<StatusError>,
}

/// A selected backing service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub struct BackingService {
    /// Cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
}

/// One error with the path of the offending field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub struct StatusError {
    /// Field path such as `spec.ports[1].targetPort`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}
