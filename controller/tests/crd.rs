//! The committed CRD matches the Rust types, and the example resources validate against it.
#![allow(clippy::unwrap_used)]

mod common;

use meshfed_controller::crd::{CRD_PATH, crd_yaml};

#[test]
fn committed_crd_is_current() {
    // Regenerate with UPDATE_GOLDEN=1 cargo test -p meshfed-controller --test crd.
    common::golden(&format!("../{CRD_PATH}"), &crd_yaml());
}

#[test]
fn crd_names_and_version() {
    let schemas = common::schema::schemas_from(&crd_yaml());
    assert!(schemas.contains_key(&("VirtualDestination".to_owned(), "v1alpha1".to_owned())));
    let text = crd_yaml();
    assert!(text.contains("name: virtualdestinations.meshfed.io"));
    assert!(text.contains("subresources:"), "status subresource");
}

#[test]
fn example_resources_validate_against_the_crd() {
    let schemas = common::schema::schemas_from(&crd_yaml());
    let schema = &schemas[&("VirtualDestination".to_owned(), "v1alpha1".to_owned())];
    for yaml in [common::PRIORITY, common::LOCALITY, common::FAILOVER_PRIORITY] {
        let value: serde_json::Value = serde_norway::from_str(yaml).unwrap();
        let errors = common::schema::check(schema, &value);
        assert!(errors.is_empty(), "{errors:#?}");
    }
    // A wrong type is caught by the schema too.
    let bad: serde_json::Value =
        serde_norway::from_str(&common::PRIORITY.replace("number: 80,", "number: eighty,")).unwrap();
    assert!(!common::schema::check(schema, &bad).is_empty());
}
