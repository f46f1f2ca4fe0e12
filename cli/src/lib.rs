//! Library half of the `meshfed` binary: the in-process mesh that `meshfed demo` runs and that the
//! end-to-end tests drive.

pub mod mesh;
pub mod summary;
