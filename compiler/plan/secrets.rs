//! The secret side of a compose site: where each secret's value lives
//! (a variable of the deploying host, or a file mounted as a compose
//! secret).

use std::collections::BTreeMap;

use crate::model::{SecretRef, Site};

/// Where a Dify setting's value lives when it is not a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SecretSource {
    /// A variable of the deploying host's environment.
    Env(String),
    /// A file on the deploying host, mounted as compose secret `id`.
    File { id: String },
}

/// The secret side of a compose site: which secrets exist, where they live.
#[derive(Debug, Clone, Default)]
pub(super) struct SecretPlan {
    pub(super) sources: BTreeMap<String, SecretSource>,
    /// Compose top-level secrets: id to host path.
    pub(super) files: BTreeMap<String, String>,
}

impl SecretPlan {
    pub(super) fn new(site: &Site) -> Self {
        let mut plan = SecretPlan::default();
        for (name, r) in &site.secrets {
            match r {
                SecretRef::Env { name: var } => {
                    plan.sources
                        .insert(name.clone(), SecretSource::Env(var.clone()));
                }
                SecretRef::File { path } => {
                    let id = name.to_ascii_lowercase();
                    plan.files.insert(id.clone(), path.clone());
                    plan.sources.insert(name.clone(), SecretSource::File { id });
                }
                // Compose sites never hold remote references (validated).
                SecretRef::Remote { .. } => {}
            }
        }
        plan
    }

    pub(super) fn get(&self, name: &str) -> Option<&SecretSource> {
        self.sources.get(name)
    }
}
