//! The agent's Kubernetes path against a verifier API server (kube's `tower-test` pattern): every
//! request the sink makes is checked — method, path, field manager, force, patch content type and
//! body — and answered as an API server would. The cluster holds: one object of ours still wanted,
//! one of ours no longer wanted (pruned), one labelled object another tool manages (kept), and a
//! user's object that has the name of one we want to create (left alone, reported).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use meshfed_collector::agent::kubernetes::KubernetesSink;
use meshfed_controller::{IstioObject, Kind};
use serde_json::{Value, json};
use tower_test::mock;

const FM: &str = "meshfed";
const GROUP: &str = "/apis/networking.istio.io/v1";

fn object(kind: Kind, name: &str) -> IstioObject {
    IstioObject {
        kind,
        name: name.into(),
        namespace: "web".into(),
        manifest: json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": kind.as_str(),
            "metadata": {"name": name, "namespace": "web",
                         "labels": {"app.kubernetes.io/managed-by": "meshfed"}},
            "spec": {"hosts": ["web-api.global"]},
        }),
    }
}

fn listed(kind: &str, name: &str, manager: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": "web",
                     "labels": {"app.kubernetes.io/managed-by": "meshfed"},
                     "managedFields": [{"manager": manager, "operation": "Apply",
                                        "apiVersion": "networking.istio.io/v1"}]},
        "spec": {},
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": format!("{kind}List"),
           "metadata": {"resourceVersion": "1"}, "items": items})
}

fn reply(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "not found", "reason": "NotFound", "code": 404})
}

/// Asserts the next request and answers it.
async fn expect(
    handle: &mut mock::Handle<Request<Body>, Response<Body>>,
    method: Method,
    path_and_query: &str,
    answer: Response<Body>,
) -> (Request<Body>, Vec<u8>) {
    let (request, send) = handle.next_request().await.expect("another request");
    assert_eq!(request.method(), method, "{}", request.uri());
    let uri = request.uri().to_string();
    assert_eq!(uri, path_and_query, "request order or shape");
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap().to_vec();
    send.send_response(answer);
    (Request::from_parts(parts, Body::empty()), bytes)
}

#[tokio::test]
async fn applies_with_our_field_manager_and_prunes_only_what_we_own() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let sink = KubernetesSink::new(client, FM.into());
    let desired = vec![
        object(Kind::DestinationRule, "meshfed-web-api"),
        object(Kind::VirtualService, "meshfed-web-api"),
        object(Kind::VirtualService, "meshfed-taken"),
    ];
    let server = tokio::spawn(async move {
        let selector = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmeshfed";
        let ok_list = |k: &str, items| reply(StatusCode::OK, list(k, items));
        expect(
            &mut handle,
            Method::GET,
            &format!("{GROUP}/serviceentries?&{selector}"),
            ok_list("ServiceEntry", vec![]),
        )
        .await;
        expect(
            &mut handle,
            Method::GET,
            &format!("{GROUP}/workloadentries?&{selector}"),
            ok_list("WorkloadEntry", vec![]),
        )
        .await;
        expect(
            &mut handle,
            Method::GET,
            &format!("{GROUP}/destinationrules?&{selector}"),
            ok_list("DestinationRule", vec![]),
        )
        .await;
        let vs = vec![
            listed("VirtualService", "meshfed-web-api", FM),
            listed("VirtualService", "meshfed-stale", FM),
            listed("VirtualService", "meshfed-foreign", "helm"),
        ];
        expect(
            &mut handle,
            Method::GET,
            &format!("{GROUP}/virtualservices?&{selector}"),
            ok_list("VirtualService", vs),
        )
        .await;

        // The DestinationRule is new: checked first, then applied.
        let dr = format!("{GROUP}/namespaces/web/destinationrules/meshfed-web-api");
        expect(
            &mut handle,
            Method::GET,
            &dr,
            reply(StatusCode::NOT_FOUND, not_found()),
        )
        .await;
        let apply = format!("{dr}?&force=true&fieldManager={FM}");
        let (req, body) = expect(
            &mut handle,
            Method::PATCH,
            &apply,
            reply(StatusCode::OK, listed("DestinationRule", "meshfed-web-api", FM)),
        )
        .await;
        assert_eq!(req.headers()["content-type"], "application/apply-patch+yaml");
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["kind"], "DestinationRule");
        assert_eq!(
            sent["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "meshfed"
        );

        // The VirtualService is already ours: applied without a check.
        let vs = format!("{GROUP}/namespaces/web/virtualservices/meshfed-web-api");
        expect(
            &mut handle,
            Method::PATCH,
            &format!("{vs}?&force=true&fieldManager={FM}"),
            reply(StatusCode::OK, listed("VirtualService", "meshfed-web-api", FM)),
        )
        .await;

        // A user's object already has this name: read, found without our label, not touched.
        let taken = format!("{GROUP}/namespaces/web/virtualservices/meshfed-taken");
        let user = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                          "metadata": {"name": "meshfed-taken", "namespace": "web"}, "spec": {}});
        expect(&mut handle, Method::GET, &taken, reply(StatusCode::OK, user)).await;

        // Prune: ours and no longer wanted. The helm-managed one is never deleted.
        let stale = format!("{GROUP}/namespaces/web/virtualservices/meshfed-stale?");
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
        expect(&mut handle, Method::DELETE, &stale, reply(StatusCode::OK, status)).await;
        // Nothing else may be requested.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(200), handle.next_request())
                .await
                .is_err(),
            "an unexpected request"
        );
    });
    let errors = sink.sync(&desired).await;
    server.await.unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].object, "web/VirtualService/meshfed-taken");
    assert!(
        errors[0].message.contains("not managed by meshfed"),
        "{}",
        errors[0].message
    );
}
