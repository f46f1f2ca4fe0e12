//! `VirtualDestination`s from YAML files: one text, or every `.yaml`/`.yml` file of a directory
//! (the watched-directory mode). A bad file is reported on its own and does not hide the others.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;

use crate::spec::VirtualDestination;
use crate::{Error, Result};

/// Reads every `VirtualDestination` from a YAML text (one or more `---`-separated documents;
/// empty documents are skipped). `path` only labels errors.
pub fn parse_resources(text: &str, path: &Path) -> Result<Vec<VirtualDestination>> {
    let parse_err = |e: serde_norway::Error| Error::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = serde_norway::Value::deserialize(doc).map_err(parse_err)?;
        if value.is_null() {
            continue;
        }
        out.push(serde_norway::from_value(value).map_err(parse_err)?);
    }
    Ok(out)
}

/// Every resource file in `dir` (not recursive), by file name order, each with its own result.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Result<Vec<VirtualDestination>>)>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let parsed = fs::read_to_string(&p)
                .map_err(io(&p))
                .and_then(|t| parse_resources(&t, &p));
            (p, parsed)
        })
        .collect())
}
