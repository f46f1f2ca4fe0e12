//! Kubernetes sink: server-side apply of every object with meshfed's own field manager, and
//! pruning of objects meshfed owns that the snapshot no longer lists.
//!
//! Ownership is two facts together: the `app.kubernetes.io/managed-by: meshfed` label *and* an
//! entry of our field manager in `metadata.managedFields`. So:
//! - an object of ours is applied (`PATCH …?fieldManager=<manager>&force=true`, content type
//!   `application/apply-patch+yaml`); forcing takes back fields someone edited by hand, which is
//!   what a controller owning them must do;
//! - an object with one of our names that exists without our label is a user's: it is left alone
//!   and reported as an error, never overwritten;
//! - pruning deletes only labelled objects whose managed fields name our manager; a labelled
//!   object another tool created stays.
//!
//! Requests, in order: one list per kind (label selector), then per object a GET when it is not
//! already known as ours, then the apply; then the deletes. Tested against a verifier API
//! (`tower-test`) in `collector/tests/agent_kubernetes.rs`.

use std::collections::{BTreeMap, BTreeSet};

use futures::FutureExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use meshfed_controller::render::{ISTIO_API_VERSION, MANAGED_BY};
use meshfed_controller::{IstioObject, Kind};
use meshfed_relay::proto::ConfigError;

use super::Sink;

/// Every kind the controller generates, in apply order.
const KINDS: [Kind; 4] = [
    Kind::ServiceEntry,
    Kind::WorkloadEntry,
    Kind::DestinationRule,
    Kind::VirtualService,
];

/// Applies snapshots to the cluster's API server.
pub struct KubernetesSink {
    client: kube::Client,
    field_manager: String,
}

impl KubernetesSink {
    /// A sink using `client`, applying as `field_manager`.
    pub fn new(client: kube::Client, field_manager: String) -> Self {
        Self {
            client,
            field_manager,
        }
    }

    /// Makes the API server hold exactly `objects` of meshfed's; returns what failed.
    pub async fn sync(&self, objects: &[IstioObject]) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        // (kind, namespace, name) of labelled objects, and whether our manager owns fields of each.
        let mut labelled: BTreeMap<(Kind, String, String), bool> = BTreeMap::new();
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        for kind in KINDS {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource(kind));
            match api.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => {
                    for o in list.items {
                        let ours = o
                            .metadata
                            .managed_fields
                            .iter()
                            .flatten()
                            .any(|m| m.manager.as_deref() == Some(self.field_manager.as_str()));
                        let key = (
                            kind,
                            o.metadata.namespace.clone().unwrap_or_default(),
                            o.metadata.name.clone().unwrap_or_default(),
                        );
                        labelled.insert(key, ours);
                    }
                }
                Err(e) => errors.push(error("", format!("listing {}s: {e}", kind.as_str()))),
            }
        }
        // Without a complete view of what exists, neither create safely nor prune.
        if !errors.is_empty() {
            return errors;
        }
        let params = PatchParams::apply(&self.field_manager).force();
        let mut desired = BTreeSet::new();
        for o in objects {
            let key = (o.kind, o.namespace.clone(), o.name.clone());
            desired.insert(key.clone());
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &o.namespace, &resource(o.kind));
            if !labelled.contains_key(&key) {
                match api.get_opt(&o.name).await {
                    Ok(None) => {}
                    Ok(Some(_)) => {
                        errors.push(error(
                            &object_id(o),
                            "exists and is not managed by meshfed; left unchanged".into(),
                        ));
                        continue;
                    }
                    Err(e) => {
                        errors.push(error(&object_id(o), format!("reading it: {e}")));
                        continue;
                    }
                }
            }
            if let Err(e) = api.patch(&o.name, &params, &Patch::Apply(&o.manifest)).await {
                errors.push(error(&object_id(o), format!("server-side apply: {e}")));
            }
        }
        for ((kind, ns, name), ours) in labelled {
            if !ours || desired.contains(&(kind, ns.clone(), name.clone())) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &ns, &resource(kind));
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(kind = kind.as_str(), namespace = %ns, %name, "Pruned a stale object.")
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => errors.push(error(
                    &format!("{ns}/{}/{name}", kind.as_str()),
                    format!("pruning: {e}"),
                )),
            }
        }
        errors
    }
}

impl Sink for KubernetesSink {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn apply<'a>(&'a self, objects: &'a [IstioObject]) -> futures::future::BoxFuture<'a, Vec<ConfigError>> {
        self.sync(objects).boxed()
    }
}

/// The API resource of a generated kind (`networking.istio.io/v1`), with the plural Istio's CRDs
/// declare.
fn resource(kind: Kind) -> ApiResource {
    let (group, version) = ISTIO_API_VERSION
        .split_once('/')
        .unwrap_or(("", ISTIO_API_VERSION));
    let gvk = GroupVersionKind::gvk(group, version, kind.as_str());
    let plural = match kind {
        Kind::ServiceEntry => "serviceentries",
        Kind::WorkloadEntry => "workloadentries",
        Kind::DestinationRule => "destinationrules",
        Kind::VirtualService => "virtualservices",
    };
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

fn object_id(o: &IstioObject) -> String {
    format!("{}/{}/{}", o.namespace, o.kind.as_str(), o.name)
}

fn error(object: &str, message: String) -> ConfigError {
    ConfigError {
        object: object.to_owned(),
        message,
    }
}
